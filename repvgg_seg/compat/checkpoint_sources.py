"""Every checkpoint source mmengine knows, through the weights-only loader.

mmengine's :class:`CheckpointLoader` picks a loader by prefix: local paths,
``http(s)://`` (``torch.hub.load_state_dict_from_url``, which unpickles
with ``weights_only=False``), ``torchvision://``/``modelzoo://``,
``open-mmlab://``/``openmmlab://``, ``mmcls://``, ``s3://``/``petrel://``
and ``pavi://``. Each is replaced here by a loader that resolves the name
the way mmengine does, downloads into torch hub's ``<hub dir>/checkpoints``
(in a folder per URL, with timeouts, checking the SHA-256 prefix MMSeg's
file names carry) and always ends in
:func:`~.checkpoint.safe_torch_load`. A prefix we cannot serve
safely (``pavi://``, or one registered by another library) is refused with
a clear error instead of falling back to an unsafe load.
"""
import hashlib
import http.client
import io
import os
import os.path as osp
import re
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

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

from ..utils.cli import positive_setting
from ..utils.errors import UserError
from ..utils.files import atomic_file, is_stale_temp_file
from .checkpoint import (CheckpointError, load_from_local, register_safe_globals,
                         safe_torch_load)

HTTP_PREFIXES = ('http://', 'https://')
STORAGE_PREFIXES = (r'(\S+\:)?s3://', r'(\S+\:)?petrel://')
#: Seconds a download waits to connect, and then for each piece of data.
DOWNLOAD_TIMEOUT = 60
TIMEOUT_VARIABLE = 'REPVGG_SEG_DOWNLOAD_TIMEOUT'
#: MMSeg's (and torch hub's) file names end in ``-<sha256 prefix>.pth``;
#: at least one letter, so a date (``-20221213.pth``) is not taken for one.
HASH_IN_NAME = re.compile(r'-((?=[0-9]*[a-f])[0-9a-f]{8,64})\.[^.]+$')
READ_CHUNK = 1 << 20


class DownloadError(UserError, OSError):
    """A checkpoint URL that cannot be downloaded (offline, bad URL)."""


def checkpoint_cache_dir():
    """Where downloaded checkpoints are cached: ``$TORCH_HOME/hub/
    checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), as mmengine
    and MMSeg do."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def cached_path(url, model_dir=None):
    """The cache file of ``url``: its file name, in a folder named by a
    hash of the whole URL, so two URLs of one file name never share it."""
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return osp.join(model_dir or checkpoint_cache_dir(), key,
                    osp.basename(urlparse(url).path))


def download_timeout():
    """:data:`DOWNLOAD_TIMEOUT`, or ``$REPVGG_SEG_DOWNLOAD_TIMEOUT``."""
    return positive_setting(TIMEOUT_VARIABLE, float, DOWNLOAD_TIMEOUT)


def _download(url, path, timeout, progress):
    """``url`` into ``path`` through a temporary file (removed on any
    failure, Ctrl-C included); a SHA-256 prefix in the file name must
    match the data."""
    expected = HASH_IN_NAME.search(osp.basename(path))
    digest = hashlib.sha256()
    request = Request(url, headers={'User-Agent': 'repvgg-seg'})
    with urlopen(request, timeout=timeout) as response, \
            atomic_file(path) as out, torch.hub.tqdm(
                total=response.length, disable=not progress, unit='B',
                unit_scale=True, unit_divisor=1024) as bar:
        while chunk := response.read1(READ_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
        if expected and not digest.hexdigest().startswith(expected.group(1)):
            raise DownloadError(
                f'the file downloaded from {url} has SHA-256 '
                f'{digest.hexdigest()[:len(expected.group(1))]}..., not '
                f'{expected.group(1)}... as its name says: it is corrupt or '
                'not the published file, so it was not kept')


def _remove_killed_downloads(folder):
    """The temporary files of downloads of this URL whose process was
    killed (SIGKILL: nothing could remove them then)."""
    if osp.isdir(folder):
        for name in os.listdir(folder):
            if is_stale_temp_file(name):
                os.remove(osp.join(folder, name))


def cached_download(url, model_dir=None, progress=None, timeout=None):
    """Path of ``url``'s file in the cache, downloading it once (into a
    temporary file renamed on success, so a failed download leaves
    nothing). ``timeout``: seconds to wait to connect and for each piece
    of data (default :func:`download_timeout`). Raises
    :class:`DownloadError` naming the URL, the cache folder and where to
    put a file downloaded elsewhere."""
    path = cached_path(url, model_dir)
    if osp.isfile(path):
        return path
    timeout = download_timeout() if timeout is None else timeout
    _remove_killed_downloads(osp.dirname(path))
    try:
        _download(url, path, timeout,
                  os.isatty(2) if progress is None else progress)
    except (URLError, OSError, ValueError, http.client.HTTPException) as exc:
        if isinstance(exc, UserError):
            raise
        reason = getattr(exc, 'reason', None) or exc
        if isinstance(reason, TimeoutError):
            reason = (f'no data for {timeout:g} s; to wait longer set '
                      f'{TIMEOUT_VARIABLE}=SECONDS')
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
