"""Build any model of a config (segmentor or classifier) for inference."""
from mmengine.registry import init_default_scope

from mmseg.registry import MODELS


def build_model(cfg):
    """``cfg.model`` built as MMSeg's ``init_model`` builds it: eval mode,
    ``model.cfg`` keeps the config (the test pipeline is read from it)."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    return model.eval()
