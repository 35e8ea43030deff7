"""Every checkpoint source mmengine knows, through the weights-only loader.

mmengine's :class:`CheckpointLoader` picks a loader by prefix: local paths,
``http(s)://`` (``torch.hub.load_state_dict_from_url``, which unpickles
with ``weights_only=False``), ``torchvision://``/``modelzoo://``,
``open-mmlab://``/``openmmlab://``, ``mmcls://``, ``s3://``/``petrel://``
and ``pavi://``. Each is replaced here by a loader that resolves the name
the way mmengine does, downloads into the same cache (torch hub's
``<hub dir>/checkpoints``, so files mmengine cached are reused) and always
ends in :func:`~.checkpoint.safe_torch_load`. A prefix we cannot serve
safely (``pavi://``, or one registered by another library) is refused with
a clear error instead of falling back to an unsafe load.
"""
import io
import os
import os.path as osp
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torch.hub
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import (CheckpointLoader, _get_mmengine_home,
                                        _process_mmcls_checkpoint,
                                        get_deprecated_model_names,
                                        get_external_models, get_mmcls_models,
                                        get_torchvision_models)

from ..utils.errors import UserError
from .checkpoint import (CheckpointError, load_from_local, register_safe_globals,
                         safe_torch_load)

HTTP_PREFIXES = ('http://', 'https://')
STORAGE_PREFIXES = (r'(\S+\:)?s3://', r'(\S+\:)?petrel://')


class DownloadError(UserError, OSError):
    """A checkpoint URL that cannot be downloaded (offline, bad URL)."""


def checkpoint_cache_dir():
    """Where downloaded checkpoints are cached: ``$TORCH_HOME/hub/
    checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), as mmengine
    and MMSeg do."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def cached_path(url, model_dir=None):
    """The cache file of ``url``: its file name in the cache folder."""
    return osp.join(model_dir or checkpoint_cache_dir(),
                    osp.basename(urlparse(url).path))


def cached_download(url, model_dir=None, progress=None):
    """Path of ``url``'s file in the cache, downloading it once (into a
    temporary file renamed on success, so a failed download leaves
    nothing). Raises :class:`DownloadError` naming the URL, the cache
    folder and where to put a file downloaded elsewhere."""
    path = cached_path(url, model_dir)
    if osp.isfile(path):
        return path
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(
            url, path, progress=os.isatty(2) if progress is None else progress)
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, 'reason', None) or exc
        raise DownloadError(
            f'cannot download {url} ({reason}). Downloaded checkpoints are '
            f'cached in {osp.dirname(path)}: offline, download the file '
            f'elsewhere and put it at {path}, or point the config at a local '
            'copy.') from None
    return path


def _load_downloaded(path, url, map_location):
    """Load a cached download; one that is refused leaves the cache, so a
    corrected file on the server is fetched next time."""
    try:
        return load_from_local(path, map_location)
    except CheckpointError as exc:
        os.remove(path)
        raise CheckpointError(f'{exc} (downloaded from {url}; removed from '
                              'the cache)') from None


def load_from_http(filename, map_location=None, model_dir=None,
                   progress=None):
    """A checkpoint URL: downloaded once into the cache (in distributed runs
    by rank 0 first, as mmengine does), loaded weights-only."""
    rank, world_size = get_dist_info()
    if rank == 0:
        path = cached_download(filename, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = cached_download(filename, model_dir, progress)
    return _load_downloaded(path, filename, map_location)


def _model_url(kind, name, urls):
    if name not in urls:
        raise CheckpointError(f'unknown {kind} checkpoint name {name!r}: '
                              'check the name, or use a URL or local path')
    return urls[name]


def load_from_torchvision(filename, map_location=None):
    """``torchvision://NAME`` (``modelzoo://NAME``): torchvision's URL."""
    name = filename.split('://', 1)[1]
    try:
        urls = get_torchvision_models()
    except ImportError:
        raise CheckpointError(f'{filename} names a torchvision checkpoint: '
                              'pip install torchvision, or use its URL') from None
    return load_from_http(_model_url('torchvision', name, urls), map_location)


def load_from_openmmlab(filename, map_location=None):
    """``open-mmlab://NAME``: a URL or a file under mmengine's home, from
    mmengine's table (plus ``$MMENGINE_HOME/open_mmlab.json``)."""
    name = filename.split('://', 1)[1]
    name = get_deprecated_model_names().get(name, name)
    url = _model_url('open-mmlab', name, get_external_models())
    if url.startswith(HTTP_PREFIXES):
        return load_from_http(url, map_location)
    return load_from_local(osp.join(_get_mmengine_home(), url), map_location)


def load_from_mmcls(filename, map_location=None):
    """``mmcls://NAME``: an mmcls model-zoo URL, backbone keys kept."""
    url = _model_url('mmcls', filename[len('mmcls://'):], get_mmcls_models())
    return _process_mmcls_checkpoint(load_from_http(url, map_location))


def load_from_ceph(filename, map_location=None, backend='petrel'):
    """``s3://`` / ``petrel://``: the bytes from mmengine's file backend."""
    data = get_file_backend(filename, backend_args={'backend': backend}).get(
        filename)
    with io.BytesIO(data) as buffer:
        return safe_torch_load(buffer, filename, map_location)


def _refusing_loader(prefix):
    def load_from_unsupported(filename, map_location=None):
        raise CheckpointError(
            f'cannot load {filename}: checkpoints from {prefix} are not '
            'loaded, because they could not be checked to hold only '
            'weights; download the file and pass its local path')
    return load_from_unsupported


#: ``prefix -> loader`` registered in mmengine's CheckpointLoader.
SAFE_LOADERS = {
    '': load_from_local,
    **dict.fromkeys(HTTP_PREFIXES, load_from_http),
    **dict.fromkeys(('torchvision://', 'modelzoo://'), load_from_torchvision),
    **dict.fromkeys(('open-mmlab://', 'openmmlab://'), load_from_openmmlab),
    'mmcls://': load_from_mmcls,
    **dict.fromkeys(STORAGE_PREFIXES, load_from_ceph),
}


def install_safe_checkpoint_loader():
    """Allow-list mmengine's checkpoint types, register the safe loaders for
    every prefix and refuse any other registered prefix. mmengine's own
    loader functions are rebound too, for code that calls them directly."""
    register_safe_globals()
    for prefix, loader in SAFE_LOADERS.items():
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader,
                                         force=True)
    for prefix in list(CheckpointLoader._schemes):
        if prefix not in SAFE_LOADERS:
            CheckpointLoader.register_scheme(
                prefixes=prefix, loader=_refusing_loader(prefix), force=True)
    for loader in set(SAFE_LOADERS.values()):
        setattr(mmengine_checkpoint, loader.__name__, loader)
    mmengine_checkpoint.load_from_pavi = _refusing_loader('pavi://')
