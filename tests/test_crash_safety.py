"""Training survives SIGKILL at any moment: a real tools/train.py run
(checkpoint every iteration) is killed while a checkpoint is being written
and between checkpoints, then the newest checkpoint is torn and
``last_checkpoint`` emptied as an unprotected writer would leave them;
``--resume`` then still finishes the schedule, and no torn file ever sits
under a final checkpoint name (repvgg_seg.compat.crash_safe)."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import REPO_ROOT, citymini_root

from repvgg_seg.compat import is_complete_checkpoint

CONFIG = os.path.join(REPO_ROOT, 'tests', 'configs',
                      'pspnet_repvgg_tiny_citymini.py')
MAX_ITERS = 6
#: Runs that may miss the moment a checkpoint is being written (it lasts
#: milliseconds) before the test gives up.
WRITE_ATTEMPTS = 3
RUN_TIMEOUT = 300
POLL_SECONDS = 2e-4


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 2, 1)


def train_command(work_dir, data_root, resume):
    return [sys.executable, os.path.join(REPO_ROOT, 'tools', 'train.py'),
            CONFIG, '--work-dir', str(work_dir), *(['--resume'] * resume),
            '--cfg-options', 'default_hooks.checkpoint.interval=1',
            f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_begin=1000',
            *[f'{split}_dataloader.dataset.data_root={data_root}'
              for split in ('train', 'val')]]


def start(work_dir, data_root, resume, log):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    return subprocess.Popen(
        train_command(work_dir, data_root, resume), cwd=REPO_ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT)


def names(work_dir):
    try:
        return set(os.listdir(work_dir))
    except FileNotFoundError:
        return set()


def is_checkpoint_write(name):
    """A checkpoint being written: atomic_write's temporary file, or (for a
    writer that writes in place) the final name itself."""
    return name.endswith('.pth')


def read_last_checkpoint(work_dir):
    try:
        with open(os.path.join(work_dir, 'last_checkpoint')) as f:
            return f.read()
    except FileNotFoundError:
        return None


def kill_when(proc, work_dir, moment):
    """SIGKILL ``proc`` as soon as ``moment(new names)`` holds; False if it
    ended first. Polls every :data:`POLL_SECONDS`: a checkpoint write of
    the tiny model lasts a few ms (and spinning would starve training)."""
    before = names(work_dir)
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None:
        if moment(names(work_dir) - before):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        assert time.monotonic() < deadline, 'training hung'
        time.sleep(POLL_SECONDS)
    return False


def assert_nothing_torn(work_dir):
    """Every file under a final checkpoint name is whole, and
    last_checkpoint names nothing (torn while written) or a whole file."""
    for name in names(work_dir):
        if name.endswith('.pth') and not name.startswith('.tmp-'):
            assert is_complete_checkpoint(os.path.join(work_dir, name)), \
                f'{name} under its final name is torn'
    recorded = read_last_checkpoint(work_dir)
    if recorded:
        assert is_complete_checkpoint(recorded), recorded


def final_iteration(work_dir):
    checkpoint = torch.load(os.path.join(work_dir, f'iter_{MAX_ITERS}.pth'),
                            map_location='cpu', weights_only=True)
    return checkpoint['meta']['iter']


def newest_checkpoint(work_dir):
    steps = [int(m.group(1)) for m in map(re.compile(
        r'^iter_(\d+)\.pth$').match, names(work_dir)) if m]
    return max(steps) if steps else 0


def test_training_resumes_after_sigkill_at_any_moment(data_root, tmp_path):
    work_dir = tmp_path / 'work'
    log_path = tmp_path / 'train.log'
    with open(log_path, 'w') as log:
        def log_tail():
            log.flush()
            return log_path.read_text()[-3000:]

        # 1. during a checkpoint write (each retry resumes the last run)
        for attempt in range(WRITE_ATTEMPTS):
            proc = start(work_dir, data_root, attempt > 0, log)
            killed = kill_when(proc, work_dir, lambda new: any(
                map(is_checkpoint_write, new)))
            assert killed, f'training ended before a checkpoint\n{log_tail()}'
            assert_nothing_torn(work_dir)
            if any(n.startswith('.tmp-') for n in names(work_dir)):
                break
        else:
            pytest.fail(f'missed every checkpoint write in {WRITE_ATTEMPTS} '
                        'runs (only killed after one)')

        # 2. between checkpoints: just after last_checkpoint names the
        # next one (iter 2 at least, so that step 3 has one to fall back to)
        target = f'iter_{max(newest_checkpoint(work_dir) + 1, 2)}.pth'
        proc = start(work_dir, data_root, True, log)
        assert kill_when(proc, work_dir, lambda new: (
            read_last_checkpoint(work_dir) or '').endswith(target)), \
            log_tail()
        assert_nothing_torn(work_dir)

        # 3. what a writer without atomic renames leaves: a torn newest
        # checkpoint and an empty last_checkpoint
        newest = newest_checkpoint(work_dir)
        assert 2 <= newest < MAX_ITERS, log_tail()
        torn = work_dir / f'iter_{newest}.pth'
        torn.write_bytes(torn.read_bytes()[:torn.stat().st_size // 2])
        (work_dir / 'last_checkpoint').write_text('')
        log.flush()
        offset = log_path.stat().st_size
        proc = start(work_dir, data_root, True, log)
        assert proc.wait(RUN_TIMEOUT) == 0, log_tail()
        output = log_path.read_text()[offset:]
        assert f'resuming from {work_dir}/iter_{newest - 1}.pth' in output
        assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in output
    assert final_iteration(work_dir) == MAX_ITERS
    # the temporary file of the save killed in 1. went at the next start
    assert not [n for n in names(work_dir) if n.startswith('.tmp-')]
    assert_nothing_torn(work_dir)
