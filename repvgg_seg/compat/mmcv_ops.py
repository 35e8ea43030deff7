"""Let MMSegmentation import on ``mmcv-lite`` (mmcv without compiled ops).

mmseg 1.2.2 imports ``mmcv.ops`` at module load (``point_sample`` in
``mmseg/utils/mask_classification.py``, ``models/utils/point_sample.py`` and
``decode_heads/san_head.py``; ``sigmoid_focal_loss`` in ``losses/focal_loss.py``),
and ``mmcv/ops/__init__.py`` loads the compiled ``mmcv._ext`` straight away,
so ``import mmseg.models`` fails with lite.

When ``mmcv._ext`` is missing we put a stand-in ``mmcv.ops`` package into
``sys.modules``: its pure-PyTorch submodules (``point_sample``) still load from
the real files, and every compiled op becomes a placeholder that raises a clear
error when it is actually used. With full mmcv nothing is touched.
"""
import importlib
import importlib.util
import os.path as osp
import sys
import types
import warnings
from ..utils.errors import UserError

#: Pure-PyTorch submodules of ``mmcv.ops`` that mmseg imports names from.
PURE_SUBMODULES = ('point_sample', )


class CompiledOpUnavailable(UserError, RuntimeError):
    """Raised when a compiled mmcv op is used on an mmcv-lite install."""


def _placeholder(name):
    """A class standing in for compiled op ``name``.

    A class (not a function) so ``isinstance(m, DeformConv2d)`` checks in
    mmseg keep working; calling or instantiating it raises.
    """

    def _refuse(*args, **kwargs):
        raise CompiledOpUnavailable(
            f'mmcv.ops.{name} is a compiled op, but the installed mmcv is '
            'mmcv-lite (no compiled ops). Install full mmcv 2.1 instead: '
            'pip uninstall -y mmcv-lite && pip install "setuptools<81" && '
            'pip install --no-build-isolation "mmcv==2.1.0" (see README, '
            '"Full mmcv").')

    return type(name, (), {'__new__': _refuse, '__module__': 'mmcv.ops'})


def compiled_ops_available():
    """True when mmcv ships its compiled extension (full mmcv)."""
    return importlib.util.find_spec('mmcv._ext') is not None


def install_lite_ops_shim():
    """Install the stand-in ``mmcv.ops`` if (and only if) mmcv is lite.

    Returns True when the shim is active.
    """
    ops = sys.modules.get('mmcv.ops')
    if ops is not None:
        return getattr(ops, '__repvgg_seg_shim__', False)
    if compiled_ops_available():
        return False
    mmcv = importlib.import_module('mmcv')
    shim = types.ModuleType('mmcv.ops', __doc__)
    shim.__path__ = [osp.join(osp.dirname(mmcv.__file__), 'ops')]
    shim.__repvgg_seg_shim__ = True

    def __getattr__(name):
        if name.startswith('_'):
            raise AttributeError(name)
        value = _placeholder(name)
        setattr(shim, name, value)
        return value

    shim.__getattr__ = __getattr__
    sys.modules['mmcv.ops'] = shim
    # mmcv.cnn warns on every start that lite lacks this op; expected here.
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    mmcv.ops = shim
    for sub in PURE_SUBMODULES:
        module = importlib.import_module(f'mmcv.ops.{sub}')
        for attr in getattr(module, '__all__', None) or dir(module):
            if not attr.startswith('_'):
                setattr(shim, attr, getattr(module, attr))
    return True
