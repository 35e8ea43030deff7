"""Compatibility layer between mmseg 1.2.2, mmcv(-lite) 2.1, mmengine 0.10.7
and new torch.

Imported first by :mod:`repvgg_seg`, before anything imports ``mmseg.models``.
"""
from .warnings import silence_known_warnings

silence_known_warnings()  # first: the imports below print some of them

from .checkpoint import CheckpointError, load_from_local  # noqa: E402
from .checkpoint_sources import (DownloadError,  # noqa: E402
                                 cached_download, checkpoint_cache_dir,
                                 install_safe_checkpoint_loader)
from .crash_safe import (find_latest_complete_checkpoint,  # noqa: E402
                         install_crash_safe_checkpoints,
                         is_complete_checkpoint)
from .mmcv_ops import (CompiledOpUnavailable,  # noqa: E402
                       compiled_ops_available, install_lite_ops_shim)

install_lite_ops_shim()
install_safe_checkpoint_loader()
install_crash_safe_checkpoints()

__all__ = [
    'CheckpointError', 'CompiledOpUnavailable', 'DownloadError',
    'cached_download', 'checkpoint_cache_dir', 'compiled_ops_available',
    'find_latest_complete_checkpoint', 'install_lite_ops_shim',
    'is_complete_checkpoint', 'load_from_local'
]
