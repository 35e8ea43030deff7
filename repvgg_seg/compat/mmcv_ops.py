"""Let MMSegmentation import on ``mmcv-lite`` (mmcv without compiled ops).

mmseg 1.2.2 imports ``mmcv.ops`` at module load (``point_sample`` in
``mmseg/utils/mask_classification.py``, ``models/utils/point_sample.py`` and
``decode_heads/san_head.py``; ``sigmoid_focal_loss`` in ``losses/focal_loss.py``),
and ``mmcv/ops/__init__.py`` loads the compiled ``mmcv._ext`` straight away,
so ``import mmseg.models`` fails with lite.

The stand-in ``mmcv.ops`` comes from the meta-path finder of the top-level
:mod:`repvgg_seg_hook` (installed at interpreter start by the package's
``.pth`` file, so mmseg imports in any order; installed here again for runs
from a source tree): pure-PyTorch submodules (``point_sample``) load from the
real files, each compiled op mmseg imports (``MMSEG_COMPILED_OPS``) is a
placeholder that raises :class:`CompiledOpUnavailable` when used, and any
other name is an ``ImportError``, as with real mmcv. With full mmcv nothing
is touched.
"""
import importlib
import sys

import repvgg_seg_hook
from repvgg_seg_hook import SHIM_FLAG, compiled_ops_available
from ..utils.errors import UserError


class CompiledOpUnavailable(UserError, RuntimeError):
    """Raised when a compiled mmcv op is used on an mmcv-lite install."""


def compiled_op_unavailable(name):
    """The error for using compiled op ``name`` on mmcv-lite."""
    return CompiledOpUnavailable(
        f'mmcv.ops.{name} is a compiled op, but the installed mmcv is '
        'mmcv-lite (no compiled ops). Install full mmcv 2.1 instead: '
        'pip uninstall -y mmcv-lite && pip install "setuptools<81" && '
        'pip install --no-build-isolation "mmcv==2.1.0" (see README, '
        '"Full mmcv").')


def install_lite_ops_shim():
    """Install the finder and import ``mmcv.ops`` (the stand-in if, and only
    if, mmcv is lite). Returns True when the stand-in is active."""
    repvgg_seg_hook.install()
    ops = sys.modules.get('mmcv.ops')
    if ops is None:
        if compiled_ops_available():
            return False
        ops = importlib.import_module('mmcv.ops')
    return getattr(ops, SHIM_FLAG, False)


__all__ = ['CompiledOpUnavailable', 'compiled_ops_available',
           'install_lite_ops_shim']
