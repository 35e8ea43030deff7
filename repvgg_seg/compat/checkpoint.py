"""Load checkpoints safely with ``weights_only=True`` (torch >= 2.6 default).

mmengine 0.10.7 saves a ``message_hub`` with :class:`HistoryBuffer` objects and
numpy arrays/scalars in ``meta``, which the weights-only unpickler rejects, so
``--resume`` and ``load_from`` fail under torch >= 2.6. Rather than turning the
safety off we allow-list exactly those types, and register a local-file loader
in mmengine's :class:`CheckpointLoader` that always passes ``weights_only=True``
(on every torch version) and turns refusals into clear errors; every other
source (URLs, ``open-mmlab://`` names, ...) ends in the same loader
(:mod:`.checkpoint_sources`).
"""
import os.path as osp
import pickle
import re
import zipfile

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from ..utils.errors import PathNotFound, UserError

#: Methods a pickled HistoryBuffer refers to by ``getattr(HistoryBuffer, name)``.
HISTORY_BUFFER_METHODS = ('min', 'max', 'mean', 'current')
#: The first byte of a pickle of protocol >= 2 (legacy torch.save files).
PICKLE_PROTO = pickle.PROTO
#: Where a tar archive's ``ustar`` magic ends (its header's bytes 257-262).
TAR_MAGIC_END = 262


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot or must not be loaded."""


def _history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr`` inside checkpoints.

    A free ``getattr`` would let a pickle walk from any allowed object to
    arbitrary code, so only the lookups mmengine itself writes are allowed.
    """
    if obj is HistoryBuffer and (name in HISTORY_BUFFER_METHODS
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def _numpy_globals():
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    entries = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        entries += [(fn, f'numpy.core.multiarray.{name}'),
                    (fn, f'numpy._core.multiarray.{name}')]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        entries += [getattr(dtypes, n) for n in dir(dtypes)
                    if n.endswith('DType') and n != 'ObjectDType']
    return entries


def safe_globals():
    """The exact non-tensor types mmengine checkpoints contain."""
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def register_safe_globals():
    """Allow-list :func:`safe_globals` for every weights-only load.

    Returns False on torch < 2.5, which cannot allow-list these types; plain
    weight files still load there, full training checkpoints are refused.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    try:
        add(safe_globals())
    except (TypeError, AttributeError):  # torch 2.4: no (obj, name) entries
        add([g for g in safe_globals() if not isinstance(g, tuple)])
        return False
    return True


def _non_finite_tensor(node, key=''):
    """``(key, count)`` of the first tensor in ``node`` (a checkpoint:
    nested dicts, lists, tuples) holding NaN or infinite values, or None."""
    if isinstance(node, torch.Tensor):
        if node.is_floating_point() or node.is_complex():
            bad = int((~torch.isfinite(node)).sum())
            if bad:
                return key, bad
        return None
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return None
    for name, value in items:
        found = _non_finite_tensor(value, f'{key}.{name}' if key else
                                   str(name))
        if found:
            return found
    return None


def safe_torch_load(source, name, map_location='cpu'):
    """``torch.load(source, weights_only=True)`` (a path or a file object
    read from ``name``), refusals and broken files as one-line errors; a
    tensor with NaN or infinite values is refused (such weights give
    all-zero labels without an error, or pass checks that do not run
    them, as an auxiliary head)."""
    checkpoint = _weights_only_load(source, name, map_location)
    found = _non_finite_tensor(checkpoint)
    if found:
        raise CheckpointError(
            f'refusing checkpoint {name}: {found[0]} has {found[1]} NaN or '
            'infinite values (a diverged training, or a corrupt file); use '
            'an earlier checkpoint, or retrain with a lower learning rate')
    return checkpoint


def _weights_only_load(source, name, map_location):
    try:
        return torch.load(source, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r'GLOBAL (\S+)', str(exc))  # any torch version
        detail = (f'it asks for {found.group(1)}' if found else
                  str(exc).split('WeightsUnpickler error:')[-1].strip())
        raise CheckpointError(
            f'refusing to load checkpoint {name}: it holds objects other '
            f'than weights and training state ({detail.splitlines()[0]}). '
            'Loading it could run arbitrary code, so nothing was executed. '
            'Use a checkpoint written by torch.save of a state dict, or by '
            'this project/mmengine.') from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f'cannot read checkpoint {name}: the file is truncated or '
            f'is not a PyTorch checkpoint ({type(exc).__name__}: {exc}). '
            'Re-download or re-save it.') from None


def load_from_local(filename, map_location='cpu'):
    """``torch.load`` of a local file with ``weights_only=True`` and
    readable errors (a folder or a file of another kind is named as such)."""
    filename = osp.expanduser(str(filename))
    if osp.isdir(filename):
        raise CheckpointError(f'checkpoint {filename} is a directory: give '
                              'the checkpoint file inside it (e.g. '
                              f'{osp.join(filename, "iter_1000.pth")})')
    if not osp.isfile(filename):
        raise PathNotFound(
            f'checkpoint {filename} does not exist: check the path')
    not_torch = _not_a_torch_file(filename)
    if not_torch:
        raise CheckpointError(f'cannot read checkpoint {filename}: '
                              f'{not_torch}')
    return safe_torch_load(filename, filename, map_location)


def _not_a_torch_file(filename):
    """What the file is when it is none of torch.save's formats (a zip
    archive, truncated or not; a pickle from torch < 1.6; a tar archive
    from torch < 0.4), else ``None``: only a real pickle can ask for code,
    so only that deserves the warning."""
    with open(filename, 'rb') as f:
        head = f.read(TAR_MAGIC_END)
    if head[:4] == b'PK\x03\x04' or head[:1] == PICKLE_PROTO or \
            head[TAR_MAGIC_END - 5:] == b'ustar':
        return None
    if len(head) >= 10 and head[8:10] == b'{"':
        return ('it is a safetensors file, not a PyTorch checkpoint (load '
                'it with safetensors.torch.load_file and torch.save the '
                'dict)')
    if not head:
        return 'the file is empty'
    return ('it is not a PyTorch checkpoint (neither the zip archive nor '
            'the pickle torch.save writes)')
