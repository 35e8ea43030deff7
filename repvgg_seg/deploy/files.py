"""Write outputs so that an interrupted or failed run never leaves a
half-written file under the name the user asked for."""
import os
import os.path as osp
import shutil
from contextlib import contextmanager


@contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path`` and move it to ``path`` only
    when the block succeeds; on any error (or Ctrl-C) it is removed.

    The temporary name keeps the extension, as writers such as OpenCV's
    ``VideoWriter`` and ``Config.dump`` choose the format by it; it sits in
    the same folder, so the final ``os.replace`` is atomic. ``path`` may be
    a file or a folder (an existing folder must be empty).
    """
    folder, name = osp.split(osp.abspath(path))
    stem, ext = osp.splitext(name)
    tmp_path = osp.join(folder, f'.{stem}.{os.getpid()}.tmp{ext}')
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
