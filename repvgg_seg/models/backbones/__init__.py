from .repvgg import RepVGG
from ..repvgg_archs import (ARCH_SETTINGS, RepVGGArchKeyError,
                           RepVGGArchTypeError, RepVGGArgumentError)
from .repvgg_blocks import RepVGGBlock, SELayer

__all__ = [
    'ARCH_SETTINGS', 'RepVGG', 'RepVGGArchKeyError', 'RepVGGArchTypeError',
    'RepVGGArgumentError', 'RepVGGBlock', 'SELayer'
]
