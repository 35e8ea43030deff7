"""Inference API in MMSeg's ``init_model`` / ``inference_model`` style, for
training and fused (deploy) checkpoints alike.

>>> model = init_segmentor('configs/pspnet_repvgg_a0.py', 'iter_80000.pth',
...                        device='cuda:0', fuse=True)
>>> result = inference_segmentor(model, 'demo.png')  # a SegDataSample
>>> labels = SegPredictor(model, batch_size=8).predict(frames)  # numpy
"""
import torch

from ..deploy import SegPredictor, as_bgr_image
from ..deploy.fuse import deploy_config, fuse_model, is_deploy_config
from ..deploy.loading import (build_model, dataset_meta_of,
                              is_fused_checkpoint, load_config, load_weights,
                              read_checkpoint)
from ..utils.errors import InvalidArgument


def init_segmentor(config, checkpoint=None, device='cpu', fuse=False,
                   cfg_options=None):
    """Build a segmentor from a config (path or ``Config``) and load a
    checkpoint that must match it.

    A fused checkpoint may come with its deploy config or with the training
    config (the deploy structure is derived from it). ``fuse=True`` fuses a
    training-form model after loading (exact; faster inference). The model
    is in eval mode, with ``model.cfg`` and ``model.dataset_meta`` set.
    """
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise InvalidArgument(f'device {device} requested but CUDA is not '
                         'available: use device="cpu"')
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    source = read_checkpoint(checkpoint) if checkpoint else {}
    if source and is_fused_checkpoint(source, checkpoint) and \
            not is_deploy_config(cfg):
        cfg = deploy_config(cfg)
    model = build_model(cfg)
    if checkpoint:
        load_weights(model, source, checkpoint, getattr(config, 'filename',
                                                        config))
    model.dataset_meta = dataset_meta_of(source, model)
    if fuse:
        fuse_model(model)
    return model.to(device)


def inference_segmentor(model, imgs, batch_size=1, fp16=False):
    """Segment image(s) like ``mmseg.apis.inference_model``: one image
    (path or ``HxW[xC]`` BGR array) gives a ``SegDataSample``, a list gives
    a list. ``pred_sem_seg`` and ``seg_logits`` are at each input's size."""
    predictor = SegPredictor(model, batch_size, fp16)
    is_batch = isinstance(imgs, (list, tuple))
    images = [as_bgr_image(img) for img in (imgs if is_batch else [imgs])]
    results = [sample for batch in predictor.batches(images)
               for sample in predictor.forward(batch)]
    return results if is_batch else results[0]
