from .rdrnet import RB, RDRNet, RepParallel, RPPM
from .reparam import Block1x1, ReparamBlock
from .repvgg import RepVGG
from ..repvgg_archs import (ARCH_SETTINGS, RepVGGArchKeyError,
                           RepVGGArchTypeError, RepVGGArgumentError)
from .repvgg_blocks import RepVGGBlock, SELayer

__all__ = [
    'ARCH_SETTINGS', 'RB', 'RDRNet', 'RPPM', 'Block1x1', 'RepParallel',
    'ReparamBlock', 'RepVGG', 'RepVGGArchKeyError', 'RepVGGArchTypeError',
    'RepVGGArgumentError', 'RepVGGBlock', 'SELayer'
]
