"""The one inference path of a segmentor, shared by the API and the video
demo, so that optimising it (fp16, cudnn, CUDA graphs) speeds up both."""
from pathlib import Path

import cv2
import mmcv
import numpy as np
import torch
from mmengine.dataset import Compose

from ..utils.config import test_pipeline_of
from .fast_path import optimize_for_inference
from ..utils.errors import InvalidArgument
from ..utils.images import check_image_file, check_image_size


def as_bgr_image(image):
    """An ``HxWx3`` BGR array from an image path or array, as MMSeg takes
    it. Grey (``HxW``, ``HxWx1``) and BGRA (``HxWx4``) arrays are converted,
    16-bit ones scaled to 8 bits as OpenCV reads a 16-bit PNG file (its
    high byte); anything else, or more pixels than the limit
    (:func:`~..utils.images.max_image_pixels`), is refused with a
    ``ValueError``."""
    if isinstance(image, (str, Path)):
        check_image_file(str(image))  # FileNotFoundError when missing
        array = mmcv.imread(str(image))
        if array is None:
            raise InvalidArgument(f'cannot decode image {image}')
        return array
    if not isinstance(image, np.ndarray):
        raise InvalidArgument(f'expected an image path or a numpy array, got '
                         f'{type(image).__name__}')
    if image.dtype.kind not in 'uif':
        raise InvalidArgument(f'expected a numeric image array, got dtype '
                         f'{image.dtype}')
    if image.dtype.kind == 'f' and not np.isfinite(image).all():
        raise InvalidArgument('the image has NaN or infinite values')
    if (image.dtype.kind == 'f' and image.dtype.itemsize > 4 and image.size
            and np.abs(image).max() > np.finfo(np.float32).max):
        raise InvalidArgument(
            f'the image has values up to {np.abs(image).max():.3g}, beyond '
            'float32 (the model computes in float32): scale it to 0..255')
    if (image.size == 0 or image.ndim not in (2, 3)
            or image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InvalidArgument(f'expected an HxW, HxWx1, HxWx3 or HxWx4 image, '
                         f'got shape {image.shape}')
    check_image_size(image.shape[1], image.shape[0], 'the image array')
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[..., :3]
    # OpenCV's resize in the test pipeline takes uint8 or float32
    return image if image.dtype == np.uint8 else image.astype(np.float32)


def _test_pipeline(cfg):
    """The config's test pipeline, fed arrays instead of files and without
    the annotations, as ``mmseg.apis.inference_model`` runs it."""
    steps = [dict(t) for t in test_pipeline_of(cfg)
             if t['type'] != 'LoadAnnotations']
    steps[0] = dict(type='LoadImageFromNDArray')
    return Compose(steps)


class SegPredictor:
    """Run a segmentor on images: the config's test pipeline, the model,
    logits resized to each input's size, argmax (MMSeg's ``test_step``,
    so results equal ``inference_model`` and ``tools/test.py``).

    Args:
        model: a segmentor from :func:`repvgg_seg.apis.init_segmentor`
            (or ``mmseg.apis.init_model``), fused or not.
        batch_size (int): images per forward pass.
        fp16 (bool): float16 autocast; needs the model on a CUDA device.
        fast (bool): label maps through :func:`optimize_for_inference`
            (fp16, channels_last, fused conv+ReLU, CUDA graphs) wherever the
            test pipeline would not resize the image (e.g. 1024x2048
            Cityscapes frames), so results stay those of ``test_step`` up to
            fp16 rounding. ``None``: on when the model is on a GPU.
    """

    def __init__(self, model, batch_size=1, fp16=False, fast=None):
        if batch_size < 1:
            raise InvalidArgument(f'batch_size must be >= 1, got {batch_size}')
        self.device = next(model.parameters()).device
        if self.device.type == 'meta':
            raise InvalidArgument('the model is on the meta device, which '
                                  'holds no weights: load it on cpu or cuda')
        if fp16 and self.device.type != 'cuda':
            raise InvalidArgument('fp16 needs the model on a CUDA device, it is '
                             f'on {self.device}')
        self.model = model.eval()
        self.batch_size, self.fp16 = batch_size, fp16
        self.pipeline = _test_pipeline(model.cfg)
        num_classes = model.decode_head.num_classes
        self.label_dtype = torch.uint8 if num_classes <= 255 else torch.int64
        if fast is None:
            fast = self.device.type == 'cuda'
        self.fast = optimize_for_inference(model) if fast else None
        self._kept_shapes = {}

    def _pipeline_keeps_size(self, image):
        """Whether the test pipeline leaves this image size as it is (the
        fast path skips the pipeline, so it only serves those)."""
        if image.shape not in self._kept_shapes:
            resized = self._preprocess(image)['data_samples'].img_shape
            self._kept_shapes[image.shape] = (
                tuple(resized) == tuple(image.shape[:2]))
        return self._kept_shapes[image.shape]

    def fast_path_serves(self, size):
        """Whether frames of ``size`` (width, height) go through the fast
        path (there is one, and the test pipeline keeps that size)."""
        width, height = size
        return self.fast is not None and self._pipeline_keeps_size(
            np.zeros((height, width, 3), np.uint8))

    @torch.no_grad()
    def forward(self, images):
        """One batch of same-size BGR arrays -> ``SegDataSample`` list
        (``pred_sem_seg`` and ``seg_logits`` at the input size)."""
        samples = [self._preprocess(image) for image in images]
        data = dict(inputs=[s['inputs'] for s in samples],
                    data_samples=[s['data_samples'] for s in samples])
        with torch.autocast('cuda', torch.float16, enabled=self.fp16):
            return self.model.test_step(data)

    def _preprocess(self, image):
        try:
            return self.pipeline(dict(img=image))
        except cv2.error as exc:
            height, width = image.shape[:2]
            raise InvalidArgument(
                f'the test pipeline cannot preprocess a {height}x{width} '
                f'image (OpenCV: {exc.err}); an extreme aspect ratio '
                'scales one side to 0 pixels') from None

    def batches(self, images):
        """Consecutive runs of up to ``batch_size`` images of one size."""
        batch = []
        for image in images:
            if batch and (len(batch) == self.batch_size
                          or image.shape != batch[0].shape):
                yield batch
                batch = []
            batch.append(image)
        if batch:
            yield batch

    def predict(self, images, with_logits=False):
        """Label maps (``HxW`` uint8, int64 past 255 classes) of a list of
        images (paths or arrays of any size; an ``NxHxWxC`` array is N
        images); with ``with_logits`` also the ``CxHxW`` float logits."""
        if isinstance(images, (str, Path)) or (
                isinstance(images, np.ndarray) and images.ndim != 4):
            what = (f'an array of shape {images.shape}' if isinstance(
                images, np.ndarray) else f'the path {images}')
            raise InvalidArgument(f'predict takes a list of images and '
                                  f'returns a list, got {what}: for one '
                                  'image pass [image]')
        images = [as_bgr_image(image) for image in images]
        labels, logits = [], []
        for batch in self.batches(images):
            if (self.fast is not None and not with_logits
                    and self._pipeline_keeps_size(batch[0])):
                frames = torch.from_numpy(np.stack(batch)).to(self.device)
                labels += list(self.fast(frames).cpu().numpy())
                continue
            for sample in self.forward(batch):
                labels.append(sample.pred_sem_seg.data[0].to(
                    self.label_dtype).cpu().numpy())
                if with_logits:
                    logits.append(sample.seg_logits.data.float().cpu().numpy())
        return (labels, logits) if with_logits else labels
