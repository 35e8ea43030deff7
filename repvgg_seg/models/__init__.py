"""RepVGG and RDRNet backbones, their checkpoints, and model building."""
from .backbones import ARCH_SETTINGS, RDRNet, RepVGG, RepVGGBlock
from .builder import build_model
from .convert import (FORMS, ConversionError, convert_checkpoint,
                      extract_backbone)

__all__ = [
    'ARCH_SETTINGS', 'FORMS', 'ConversionError', 'RDRNet', 'RepVGG',
    'RepVGGBlock', 'build_model', 'convert_checkpoint', 'extract_backbone'
]
