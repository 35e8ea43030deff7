"""Compatibility layer between mmseg 1.2.2, mmcv(-lite) 2.1 and new torch.

Imported first by :mod:`repvgg_seg`, before anything imports ``mmseg.models``.
"""
from .checkpoint import (CheckpointError, install_safe_checkpoint_loader,
                         load_from_local)
from .mmcv_ops import (CompiledOpUnavailable, compiled_ops_available,
                       install_lite_ops_shim)

install_lite_ops_shim()
install_safe_checkpoint_loader()

__all__ = [
    'CheckpointError', 'CompiledOpUnavailable', 'compiled_ops_available',
    'install_lite_ops_shim', 'load_from_local'
]
