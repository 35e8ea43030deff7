"""Write outputs so that a failed or interrupted run never leaves a torn or
half-written file under the name the user asked for: write next to it under
a temporary name, flush, then rename (atomic on one file system). A folder
one process must own (a training's work_dir) is locked.

No write goes through a link planted under a name it can guess: temporary
names are random (and created exclusively where this module opens them),
and the lock file is opened without following a symlink.
"""
import errno
import fcntl
import io
import os
import os.path as osp
import re
import secrets
import shutil
import stat
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


class UnsafeFile(UserError, OSError):
    """A file this package would write is a link to another file."""


def _umask():
    """The process umask (reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path, mode='wb', encoding=None):
    """An open file to write ``path`` with: a temporary file next to it
    (created exclusively under a random name), renamed to ``path`` when
    the block succeeds; on any error (or Ctrl-C) it is removed."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder,
                               prefix=f'{TMP_PREFIX}{os.getpid()}-',
                               suffix=osp.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() gives, not 0600
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if osp.lexists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and \
                exc.filename is None:
            exc.filename = path  # "No space left on device" names no file
        raise


def atomic_write(data, path, mode='wb', encoding=None):
    """Write ``data`` (bytes or str) so ``path`` is either old or new."""
    with atomic_file(path, mode, encoding) as f:
        f.write(data)


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
    # random: no link can wait under it for the writer to follow
    tmp_path = osp.join(folder, f'{TMP_PREFIX}{os.getpid()}-'
                        f'{secrets.token_hex(8)}-{stem}{ext}')
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if osp.isdir(tmp_path):
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif osp.lexists(tmp_path):
            os.remove(tmp_path)


def own_folder(path):
    """Create the folder ``path`` for this run to write into; an existing
    one (the other ranks of a run make the same) must be a real folder,
    not a symbolic link, which would take the files where it points."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    try:
        os.mkdir(path)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise UnsafeFile(f'{path} is a symbolic link or no folder: '
                             'refusing to write into it (the files would go '
                             'where it points); remove it') from None


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


def _open_own_file(path):
    """``path`` opened (created) for reading and writing, refused if it is
    a symlink, or a hard link or no plain file: writing to it would change
    another file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise UnsafeFile(f'{path} is a symbolic link: refusing to write '
                         'through it (it would overwrite the file it points '
                         'to); remove the link') from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise UnsafeFile(f'{path} is a hard link or not a plain file: '
                         'refusing to write to it (it would change another '
                         'file); remove it')
    return os.fdopen(fd, 'r+')


def _is_at(file, path):
    """Whether the open ``file`` is still the one named ``path``."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(file.fileno())
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


@contextmanager
def folder_lock(folder, purpose, instead='choose another folder'):
    """Hold ``folder``'s lock (``folder/.lock``, holding the pid) for the
    block; :class:`FolderInUse` if another process holds it. The lock file
    is removed when the block ends (error or not); the kernel frees the
    lock when its process dies, so a killed run's file does not block."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, LOCK_NAME)
    while True:
        lock = _open_own_file(path)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read().strip() or 'another process'
            lock.close()
            raise FolderInUse(
                f'{folder} is in use by another {purpose} ({holder}): wait '
                f'for it to end, or {instead}') from None
        if _is_at(lock, path):
            break
        lock.close()  # its holder removed it meanwhile: lock the new file
    try:
        lock.truncate(0)
        lock.write(f'pid {os.getpid()}\n')
        lock.flush()
        yield
    finally:
        if _is_at(lock, path):  # still locked: a process that opened it
            os.remove(path)     # meanwhile retries with a new file
        lock.close()
