"""RepVGG backbones for MMSegmentation (real-time Cityscapes segmentation).

Importing the package first makes mmseg importable on mmcv-lite and
checkpoint loading safe under torch >= 2.6 (:mod:`repvgg_seg.compat`), then
registers our modules in MMSegmentation's registries.
"""
from . import compat  # noqa: F401  (must run before mmseg.models is imported)
from .models import RepVGG, RepVGGBlock  # noqa: E402

__version__ = '0.1.0'
__all__ = ['RepVGG', 'RepVGGBlock', '__version__']
# ImageNet classification: dataset, transforms, classifier, Accuracy metric.
from . import classification, datasets  # noqa: E402,F401
# Training hooks (channels_last mixed precision).
from . import engine  # noqa: E402,F401
