"""Classification transforms missing from mmcv/mmseg, torchvision-exact.

The usual ImageNet pipelines combine them with mmcv's ``CenterCrop`` and
mmseg's ``RandomFlip``::

    train: LoadCheckedImageFromFile, RandomResizedCrop(224), RandomFlip(0.5),
           PackClsInputs
    test:  LoadCheckedImageFromFile, ResizeEdge(256), CenterCrop(224),
           PackClsInputs

Resizing defaults to Pillow's bilinear filter: the official RepVGG numbers
come from torchvision's PIL transforms, and OpenCV's bilinear resize (no
antialiasing when shrinking) costs accuracy on those checkpoints.
"""
import math

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.structures import BaseDataElement
from PIL import UnidentifiedImageError

from mmseg.registry import TRANSFORMS
from ..utils.errors import InvalidArgument, UserError


class ImageReadError(UserError, OSError):
    """An image file that is missing, unreadable, truncated or corrupt."""


@TRANSFORMS.register_module()
class LoadCheckedImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that names the file when it fails.

    Decodes with Pillow by default, which (unlike OpenCV, which returns a
    half-grey image) refuses truncated JPEGs, and matches torchvision's
    loader. Every failure is raised as :class:`ImageReadError` with the path.
    """

    def __init__(self, imdecode_backend='pillow', **kwargs):
        super().__init__(imdecode_backend=imdecode_backend, **kwargs)

    def transform(self, results):
        try:
            return super().transform(results)
        except Exception as exc:  # decoders raise many types, none naming it
            reason = ('it is no image Pillow decodes (PNG, JPEG, BMP...)'
                      if isinstance(exc, UnidentifiedImageError) else
                      f'{type(exc).__name__}: {exc}')
            raise ImageReadError(f'cannot read image {results["img_path"]}: '
                                 f'{reason}') from exc


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random area and aspect ratio, resize it to ``scale``
    (torchvision's ``RandomResizedCrop``, the paper's training crop).

    Args:
        scale (int | tuple[int, int]): output size, ``(w, h)`` for a tuple.
        crop_ratio_range (tuple[float]): range of the crop's area fraction.
        aspect_ratio_range (tuple[float]): range of the crop's ``w / h``,
            sampled log-uniformly.
        max_attempts (int): samples tried before the centre-crop fallback.
        interpolation, backend: of ``mmcv.imresize``.
    """

    def __init__(self, scale, crop_ratio_range=(0.08, 1.0),
                 aspect_ratio_range=(3. / 4., 4. / 3.), max_attempts=10,
                 interpolation='bilinear', backend='pillow'):
        self.scale = (scale, scale) if isinstance(scale, int) else tuple(scale)
        self.crop_ratio_range = crop_ratio_range
        self.aspect_ratio_range = aspect_ratio_range
        self.max_attempts = max_attempts
        self.interpolation, self.backend = interpolation, backend

    def _crop_box(self, height, width):
        """``(top, left, h, w)`` of the crop, as torchvision samples it."""
        log_ratio = np.log(self.aspect_ratio_range)
        for _ in range(self.max_attempts):
            area = height * width * np.random.uniform(*self.crop_ratio_range)
            ratio = math.exp(np.random.uniform(*log_ratio))
            w = int(round(math.sqrt(area * ratio)))
            h = int(round(math.sqrt(area / ratio)))
            if 0 < w <= width and 0 < h <= height:
                return (np.random.randint(0, height - h + 1),
                        np.random.randint(0, width - w + 1), h, w)
        # Fallback: the whole image, trimmed to the allowed aspect ratios.
        in_ratio = width / height
        w, h = width, height
        if in_ratio < min(self.aspect_ratio_range):
            h = int(round(w / min(self.aspect_ratio_range)))
        elif in_ratio > max(self.aspect_ratio_range):
            w = int(round(h * max(self.aspect_ratio_range)))
        return (height - h) // 2, (width - w) // 2, h, w

    def transform(self, results):
        img = results['img']
        top, left, h, w = self._crop_box(*img.shape[:2])
        img = mmcv.imresize(img[top:top + h, left:left + w], self.scale,
                            interpolation=self.interpolation,
                            backend=self.backend)
        results['img'], results['img_shape'] = img, img.shape[:2]
        return results


@TRANSFORMS.register_module()
class ResizeEdge(BaseTransform):
    """Resize so one edge has ``scale`` pixels, keeping the aspect ratio
    (torchvision's ``Resize(256)`` for ``edge='short'``, the paper's test
    resize; sizes are truncated the same way).

    Args:
        scale (int): the target length of the chosen edge.
        edge (str): ``'short'`` or ``'long'``.
        interpolation, backend: of ``mmcv.imresize``.
    """

    def __init__(self, scale, edge='short', interpolation='bilinear',
                 backend='pillow'):
        if edge not in ('short', 'long'):
            raise InvalidArgument(f"edge must be 'short' or 'long', got {edge!r}")
        self.scale, self.edge = scale, edge
        self.interpolation, self.backend = interpolation, backend

    def transform(self, results):
        img = results['img']
        h, w = img.shape[:2]
        if (w <= h) == (self.edge == 'short'):  # the width is that edge
            size = (self.scale, int(self.scale * h / w))
        else:
            size = (int(self.scale * w / h), self.scale)
        img = mmcv.imresize(img, size, interpolation=self.interpolation,
                            backend=self.backend)
        results['img'], results['img_shape'] = img, img.shape[:2]
        results['scale_factor'] = (size[0] / w, size[1] / h)
        return results


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack the image as a CHW tensor and its label and meta into a
    :class:`~mmengine.structures.BaseDataElement` (``gt_label``; the meta
    keys present in ``results``).
    """

    def __init__(self, meta_keys=('img_path', 'ori_shape', 'img_shape',
                                  'scale_factor', 'flip', 'flip_direction')):
        self.meta_keys = meta_keys

    def transform(self, results):
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        sample = BaseDataElement(metainfo={
            k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.tensor(results['gt_label'])
        return dict(inputs=torch.from_numpy(
            np.ascontiguousarray(img.transpose(2, 0, 1))),
            data_samples=sample)
