"""Inference API with MMSeg 1.x names (``init_model``, ``inference_model``)
for every model kind (segmentors and classifiers), training and fused
checkpoints alike; the MMSeg 0.x names stay as aliases.

>>> model = init_model('configs/pspnet_repvgg_a0.py', 'iter_80000.pth',
...                    device='cuda:0', fuse=True)
>>> result = inference_model(model, 'demo.png')  # a SegDataSample
>>> labels = SegPredictor(model, batch_size=8).predict(frames)  # numpy
"""
import torch

from ..deploy import SegPredictor, as_bgr_image, load_trained_model
from ..utils.errors import InvalidArgument


def check_device(device):
    """Refuse, in one line, a device torch does not know or this machine
    does not have."""
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgument(f'unknown device {device!r}: use cpu, cuda or '
                              'cuda:N') from None
    if torch.device(device).type == 'meta':
        raise InvalidArgument("device 'meta' holds no weights (a model "
                              'there cannot compute): use cpu or cuda')
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise InvalidArgument(f'device {device} requested but CUDA is not '
                              'available: use device="cpu"')


def init_model(config, checkpoint=None, device='cpu', fuse=False,
               cfg_options=None):
    """Build a model from a config (path or ``Config``) and load a
    checkpoint that must match it.

    A fused checkpoint may come with its deploy config or with the training
    config (the deploy structure is derived from it). ``fuse=True`` fuses a
    training-form model after loading (exact; faster inference). The model
    is in eval mode, with ``model.cfg`` and ``model.dataset_meta`` set.
    """
    check_device(device)
    model = load_trained_model(config, checkpoint, fuse, cfg_options)
    return model.to(device)


def inference_model(model, imgs, batch_size=1, fp16=False):
    """Segment image(s) like ``mmseg.apis.inference_model``: one image
    (path or ``HxW[xC]`` BGR array) gives a ``SegDataSample``, a list gives
    a list. ``pred_sem_seg`` and ``seg_logits`` are at each input's size."""
    predictor = SegPredictor(model, batch_size, fp16)
    is_batch = isinstance(imgs, (list, tuple))
    images = [as_bgr_image(img) for img in (imgs if is_batch else [imgs])]
    results = [sample for batch in predictor.batches(images)
               for sample in predictor.forward(batch)]
    return results if is_batch else results[0]


#: MMSeg 0.x names, kept for code written against them.
init_segmentor = init_model
inference_segmentor = inference_model
