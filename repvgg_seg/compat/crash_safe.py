"""Crash-safe checkpoints for mmengine 0.10.7.

mmengine writes a checkpoint straight to its final name and then rewrites
``last_checkpoint`` in place, so a run killed at the wrong moment (SIGKILL,
OOM, pre-emption) leaves a torn ``iter_N.pth`` or an empty
``last_checkpoint``, and ``--resume`` fails. Two fixes at the depth where the
problem lives:

* every local write through mmengine's file backend (checkpoints included)
  goes to a temporary file in the same folder, is fsynced, then renamed;
* resuming picks the newest *complete* checkpoint: the one named in
  ``last_checkpoint`` if it is whole, else the newest whole ``*.pth``;
* a training starts by removing the temporary files that killed saves left
  (checkpoint-sized, they would pile up run after run).
"""
import glob
import logging
import os
import os.path as osp
import re
import zipfile

import mmengine.runner.checkpoint as mm_checkpoint
import mmengine.runner.runner as mm_runner
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import print_log

from ..utils.files import TMP_PREFIX, atomic_write, is_stale_temp_file


def _put(self, obj, filepath):
    atomic_write(obj, filepath)


def _put_text(self, obj, filepath, encoding='utf-8'):
    atomic_write(obj, filepath, mode='w', encoding=encoding)


def is_complete_checkpoint(path):
    """A torch checkpoint whose zip archive is whole (its central directory
    is written last, so a torn file fails this)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def _step(path):
    found = re.search(r'(\d+)\.pth$', path)
    return int(found.group(1)) if found else -1


def find_latest_complete_checkpoint(work_dir):
    """The checkpoint ``--resume`` should continue from, or None."""
    recorded = mm_checkpoint.find_latest_checkpoint(work_dir)
    if recorded and is_complete_checkpoint(recorded):
        return recorded
    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=_step,
                        reverse=True)
    for path in candidates:
        if is_complete_checkpoint(path):
            print_log(f'last_checkpoint in {work_dir} names '
                      f'{recorded or "nothing"}, which is missing or '
                      f'incomplete; resuming from {path}', logger='current',
                      level=logging.WARNING)
            return path
    return None


def _newest_complete_checkpoint_time(work_dir):
    """When the newest whole checkpoint was saved (None: none is)."""
    paths = sorted(glob.glob(osp.join(glob.escape(work_dir), '*.pth')),
                   key=osp.getmtime, reverse=True)
    return next((osp.getmtime(path) for path in paths
                 if is_complete_checkpoint(path)), None)


def remove_stale_temp_files(work_dir):
    """Remove the temporary files of saves into ``work_dir`` that will
    never complete: their writer is gone, or they are older than the newest
    complete checkpoint. Call it holding the work_dir's lock (no other
    training writes there). Returns the removed paths."""
    paths = glob.glob(osp.join(glob.escape(work_dir), f'{TMP_PREFIX}*'))
    newest = _newest_complete_checkpoint_time(work_dir) if paths else None
    removed = []
    for path in paths:
        if osp.isfile(path) and (is_stale_temp_file(path) or (
                newest is not None and osp.getmtime(path) < newest)):
            os.remove(path)
            removed.append(path)
    if removed:
        print_log(f'removed {len(removed)} temporary files of interrupted '
                  f'saves from {work_dir}', logger='current')
    return removed


def install_crash_safe_checkpoints():
    LocalBackend.put = _put
    LocalBackend.put_text = _put_text
    mm_runner.find_latest_checkpoint = find_latest_complete_checkpoint
