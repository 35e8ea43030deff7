"""Read a config file with errors that name it (a config is Python the
user wrote: any failure in it is theirs to fix, not a traceback)."""
from mmengine.config import Config


class ConfigError(ValueError):
    """A config file that cannot be read, or options that do not apply."""


def read_config(path, cfg_options=None):
    """``Config.fromfile(path)`` with ``--cfg-options`` merged."""
    try:
        cfg = Config.fromfile(path)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    except Exception as exc:  # noqa: B902 (see the module docstring)
        raise ConfigError(f'cannot read config {path} '
                          f'({type(exc).__name__}: {exc})') from None
    return cfg
