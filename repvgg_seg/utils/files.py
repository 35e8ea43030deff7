"""Write outputs so that a failed or interrupted run never leaves a torn or
half-written file under the name the user asked for: write next to it under
a temporary name, flush, then rename (atomic on one file system). A folder
one process must own (a training's work_dir) is locked."""
import fcntl
import io
import os
import os.path as osp
import re
import shutil
import tempfile
from contextlib import contextmanager

from .errors import UserError

#: Temporary outputs start with this, so stale ones can be recognised.
TMP_PREFIX = '.tmp-'
#: ``atomic_write``'s temporary names: the prefix, the writer's pid, '-'.
_WRITER_PID = re.compile(re.escape(TMP_PREFIX) + r'(\d+)-')
LOCK_NAME = '.lock'


class FolderInUse(UserError):
    """Another live process holds the folder's lock."""


def _umask():
    """The process umask (reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(data, path, mode='wb', encoding=None):
    """Write ``data`` (bytes or str) so ``path`` is either old or new."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder,
                               prefix=f'{TMP_PREFIX}{os.getpid()}-',
                               suffix=osp.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() gives, not 0600
        with os.fdopen(fd, mode, encoding=encoding) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = path  # "No space left on device" names no file
        raise


def atomic_torch_save(obj, path):
    """``torch.save`` through :func:`atomic_write`."""
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(buffer.getvalue(), path)


@contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``, moved to ``path`` only when
    the block succeeds; on any error (or Ctrl-C) it is removed.

    For writers that take a path (video writers, ``Config.dump``, a folder
    of PNGs): the temporary name keeps the extension, as such writers choose
    the format by it. ``path`` may be a file or a folder.
    """
    folder, name = osp.split(osp.abspath(path))
    stem, ext = osp.splitext(name)
    tmp_path = osp.join(folder, f'{TMP_PREFIX}{stem}.{os.getpid()}{ext}')
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if osp.isdir(tmp_path):
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif osp.lexists(tmp_path):
            os.remove(tmp_path)


def same_file(path_a, path_b):
    """Whether two paths name one file (links included), existing or not."""
    if osp.exists(path_a) and osp.exists(path_b):
        return osp.samefile(path_a, path_b)
    return osp.realpath(path_a) == osp.realpath(path_b)


def _is_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def is_stale_temp_file(path):
    """An :func:`atomic_write` temporary file whose writer is gone (killed
    with SIGKILL, OOM) or is this process (call it while this process
    writes nothing there)."""
    found = _WRITER_PID.match(osp.basename(path))
    if found is None:
        return False
    pid = int(found.group(1))
    return pid == os.getpid() or not _is_alive(pid)


@contextmanager
def folder_lock(folder, purpose, instead='choose another folder'):
    """Hold ``folder``'s lock (``folder/.lock``, holding the pid) for the
    block; :class:`FolderInUse` if another process holds it. The kernel
    frees the lock when its process dies, so a dead run's file does not
    block."""
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, LOCK_NAME), 'a+') as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or 'another process'
            raise FolderInUse(
                f'{folder} is in use by another {purpose} ({holder}): wait '
                f'for it to end, or {instead}') from None
        lock.truncate(0)
        lock.write(f'pid {os.getpid()}\n')
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
