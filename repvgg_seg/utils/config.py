"""Read configs with errors that name the file (a config is Python the user
wrote: any failure in it is theirs to fix, not a traceback)."""
import copy
import os.path as osp

from mmengine.config import Config
from mmengine.hub import get_config

from .errors import ConfigError, PathNotFound


def read_config(config, cfg_options=None):
    """A :class:`Config` from a path (``mmseg::`` paths too, resolved by
    mmengine) or a copy of a ``Config``, with ``--cfg-options`` merged."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        path = str(config)
        if '::' not in path and not osp.isfile(path):
            raise PathNotFound(f'config {path} does not exist')
        try:
            cfg = get_config(path) if '::' in path else Config.fromfile(path)
        except Exception as exc:  # noqa: B902 (see the module docstring)
            raise ConfigError(f'cannot read config {path} '
                              f'({type(exc).__name__}: {exc})') from None
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as exc:  # noqa: B902
            raise ConfigError(f'cannot apply --cfg-options to {config} '
                              f'({type(exc).__name__}: {exc})') from None
    return cfg


def test_pipeline_of(cfg):
    """The config's test pipeline (a list of transform dicts), where MMSeg
    configs keep it: ``test_pipeline`` or the test data set's."""
    return cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline
