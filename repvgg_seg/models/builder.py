"""Build any model of a config (segmentor or classifier) for inference."""
from mmengine.registry import init_default_scope

from mmseg.registry import MODELS
from ..utils.errors import ConfigError, UserError


def build_model(cfg):
    """``cfg.model`` built as MMSeg's ``init_model`` builds it: eval mode,
    ``model.cfg`` keeps the config (the test pipeline is read from it). A
    KeyError/ValueError/TypeError (or torch's RuntimeError for a negative
    layer width) while building is a setting of the config that does not
    work."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    if not isinstance(cfg.get('model'), dict):
        raise ConfigError(f'{cfg.filename} defines no model: a config needs '
                          'model = dict(type=...)')
    try:
        model = MODELS.build(cfg.model)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise ConfigError(f'cannot build the model of {cfg.filename} '
                          f'({type(exc).__name__}: {exc})') from None
    model.cfg = cfg
    return model.eval()
