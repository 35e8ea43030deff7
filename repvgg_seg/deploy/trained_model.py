"""A trained model ready to run: the structure its checkpoint records (a
fused checkpoint builds the fused network, whichever config comes with it),
its weights loaded strictly, its class names and palette, optionally fused."""
from ..models import build_model
from ..models.checkpoints import (dataset_meta_of, is_fused_checkpoint,
                                  load_weights, read_checkpoint)
from ..utils.config import read_config
from .fuse import deploy_config, fuse_model, is_deploy_config


def load_trained_model(config, checkpoint=None, fuse=False,
                       cfg_options=None):
    """Build ``config``'s model (eval mode, on the CPU) and load
    ``checkpoint``, refusing any mismatch; ``fuse=True`` fuses it after
    loading (exact). ``model.cfg`` and ``model.dataset_meta`` are set."""
    cfg = read_config(config, cfg_options)
    source = read_checkpoint(checkpoint) if checkpoint else {}
    if source and is_fused_checkpoint(source, checkpoint) and \
            not is_deploy_config(cfg):
        cfg = deploy_config(cfg)
    model = build_model(cfg)
    if checkpoint:
        load_weights(model, source, checkpoint,
                     getattr(config, 'filename', config))
    model.dataset_meta = dataset_meta_of(source, model)
    return fuse_model(model) if fuse else model
