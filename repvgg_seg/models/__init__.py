from .backbones import ARCH_SETTINGS, RepVGG, RepVGGBlock

__all__ = ['ARCH_SETTINGS', 'RepVGG', 'RepVGGBlock']
from .classifiers import ImageClassifier, LinearClsHead  # noqa: E402

__all__ += ['ImageClassifier', 'LinearClsHead']
