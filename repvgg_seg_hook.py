"""Let MMSegmentation import on ``mmcv-lite`` in any order, from any script.

mmseg 1.2.2 imports ``mmcv.ops`` at module load, and ``mmcv/ops/__init__.py``
loads the compiled ``mmcv._ext``, which lite lacks: ``from mmseg.apis import
init_model`` fails unless ``repvgg_seg`` was imported first. Installing the
package puts ``repvgg_seg_hook.pth`` into site-packages; site.py runs it in
every interpreter, so it imports nothing there: it adds a trigger to
``sys.meta_path`` that imports this module only when something imports
``mmcv.ops`` (and keeps quiet if that fails). Then :func:`install` adds the
finder below: when mmcv has no compiled extension it provides a stand-in
``mmcv.ops`` whose pure-PyTorch submodules (``point_sample``) load from
mmcv's real files and whose compiled ops are placeholders raising a clear
error when used. With full mmcv the finder steps aside. A top-level module,
not part of the ``repvgg_seg`` package, so that loading it imports neither
torch nor mmseg.
"""
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os.path as osp
import sys
import warnings

#: Pure-PyTorch submodules of ``mmcv.ops`` that mmseg imports names from.
PURE_SUBMODULES = ('point_sample', )
#: The compiled ops mmseg 1.2.2 imports from ``mmcv.ops`` (placeholders);
#: any other name is an ``ImportError``, as with real mmcv.
MMSEG_COMPILED_OPS = ('CrissCrossAttention', 'DeformConv2d',
                      'ModulatedDeformConv2d', 'PSAMask',
                      'sigmoid_focal_loss')
#: Set on the stand-in module, so callers can tell it from the real one.
SHIM_FLAG = '__repvgg_seg_shim__'


def compiled_ops_available():
    """True when mmcv ships its compiled extension (full mmcv)."""
    return importlib.util.find_spec('mmcv._ext') is not None


def _placeholder(name):
    """A class standing in for compiled op ``name``: ``isinstance`` checks
    in mmseg keep working, instantiating it raises."""

    def _refuse(*args, **kwargs):
        from repvgg_seg.compat.mmcv_ops import compiled_op_unavailable
        raise compiled_op_unavailable(name)

    return type(name, (), {'__new__': _refuse, '__module__': 'mmcv.ops'})


class LiteOpsLoader(importlib.abc.Loader):
    """Builds the stand-in ``mmcv.ops`` package."""

    def create_module(self, spec):
        return None  # a plain module

    def exec_module(self, module):
        module.__doc__ = __doc__
        setattr(module, SHIM_FLAG, True)

        def __getattr__(name):
            if name not in MMSEG_COMPILED_OPS:
                raise AttributeError(f"module 'mmcv.ops' has no attribute "
                                     f'{name!r}')
            value = _placeholder(name)
            setattr(module, name, value)
            return value

        module.__getattr__ = __getattr__
        # mmcv.cnn warns on every start that lite lacks this op; expected.
        warnings.filterwarnings(
            'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
        for sub in PURE_SUBMODULES:
            pure = importlib.import_module(f'mmcv.ops.{sub}')
            for attr in getattr(pure, '__all__', None) or dir(pure):
                if not attr.startswith('_'):
                    setattr(module, attr, getattr(pure, attr))


class LiteOpsFinder(importlib.abc.MetaPathFinder):
    """Answers only for ``mmcv.ops``, and only on mmcv-lite."""

    def find_spec(self, name, path=None, target=None):
        if name != 'mmcv.ops' or compiled_ops_available():
            return None
        spec = importlib.machinery.ModuleSpec(name, LiteOpsLoader(),
                                              is_package=True)
        spec.submodule_search_locations = [
            osp.join(entry, 'ops') for entry in (path or [])]
        return spec


def install():
    """Put the finder first on ``sys.meta_path`` (once); returns it."""
    for finder in sys.meta_path:
        if isinstance(finder, LiteOpsFinder):
            return finder
    finder = LiteOpsFinder()
    sys.meta_path.insert(0, finder)
    return finder
