"""Read configs with errors that name the file (a config is Python the user
wrote: any failure in it is theirs to fix, not a traceback).

A ``.py`` config is code by design; a YAML or JSON config is data, so YAML
is read with PyYAML's safe loader (mmengine's own reader would build any
``!!python/...`` object the file names, i.e. run code), bases included.
"""
import copy
import os.path as osp
from contextlib import contextmanager

import yaml
from mmengine.config import Config
from mmengine.fileio.handlers import YamlHandler, file_handlers
from mmengine.hub import get_config

from .errors import ConfigError, PathNotFound

SafeLoader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class SafeYamlHandler(YamlHandler):
    """mmengine's YAML reader restricted to plain data (no Python tags)."""

    def load_from_fileobj(self, file, **kwargs):
        try:
            return yaml.load(file, Loader=SafeLoader)
        except yaml.constructor.ConstructorError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else '?'
            raise ConfigError(
                f'a YAML config holds only data, but line {line} asks for '
                f'a Python object ({exc.problem}); refusing to build it '
                '(a .py config is code, a YAML one is not)') from None


@contextmanager
def _safe_yaml():
    """mmengine reads every ``.yaml``/``.yml`` safely inside the block."""
    saved = {ext: file_handlers[ext] for ext in ('yaml', 'yml')}
    file_handlers.update(dict.fromkeys(saved, SafeYamlHandler()))
    try:
        yield
    finally:
        file_handlers.update(saved)


def read_config(config, cfg_options=None):
    """A :class:`Config` from a path (``mmseg::`` paths too, resolved by
    mmengine) or a copy of a ``Config``, with ``--cfg-options`` merged."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        path = str(config)
        if '::' not in path and osp.isdir(path):
            raise ConfigError(f'config {path} is a folder: give the config '
                              'file (.py, .yaml or .json)')
        if '::' not in path and not osp.isfile(path):
            raise PathNotFound(f'config {path} does not exist')
        try:
            with _safe_yaml():
                cfg = (get_config(path) if '::' in path
                       else Config.fromfile(path))
        except ConfigError as exc:
            raise ConfigError(f'cannot read config {path}: {exc}') from None
        except Exception as exc:  # noqa: B902 (see the module docstring)
            raise ConfigError(f'cannot read config {path} '
                              f'({type(exc).__name__}: {exc})') from None
    if cfg_options:
        check_option_types(cfg, cfg_options)
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as exc:  # noqa: B902
            raise ConfigError(f'cannot apply --cfg-options to {config} '
                              f'({type(exc).__name__}: {exc})') from None
    return cfg


def _value_at(cfg, dotted):
    node = cfg
    for part in dotted.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _kind(value):
    """What a number or switch in a config must stay: mmengine and torch
    compare and compute with them deep inside (a traceback), while a string
    in their place is nearly always a typo."""
    if isinstance(value, bool):
        return 'True or False', lambda new: isinstance(new, bool)
    if isinstance(value, int):
        return 'an integer', lambda new: isinstance(new, int) and \
            not isinstance(new, bool)
    if isinstance(value, float):
        return 'a number', lambda new: isinstance(new, (int, float)) and \
            not isinstance(new, bool)
    return None, None


def check_option_types(cfg, cfg_options):
    """Refuse, in one line, a ``--cfg-options`` value that is not a number
    (or not True/False) where the config holds one; None always passes
    (it switches a setting off)."""
    values = cfg.to_dict()
    for key, new in cfg_options.items():
        old = _value_at(values, key)
        what, fits = _kind(old)
        if what and new is not None and not fits(new):
            raise ConfigError(f'--cfg-options {key}={new!r}: the config has '
                              f'{old!r} there: give {what}')


def test_pipeline_of(cfg):
    """The config's test pipeline (a list of transform dicts), where MMSeg
    configs keep it: ``test_pipeline`` or the test data set's."""
    return cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline
