"""Training and testing PSPNet-RepVGG through tools/train.py and tools/test.py
on a generated Cityscapes-format set: resume after a kill, 2-process
distributed training on CPU, and mIoU checked against cityscapesscripts."""
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cityscapesscripts.evaluation import \
    evalPixelLevelSemanticLabeling as cs_eval
from cityscapesscripts.helpers.labels import trainId2label
from PIL import Image

from helpers import citymini_root, run_logs, torchrun_train

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / 'tests/configs/pspnet_repvgg_tiny_citymini.py')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 6, 3, height=128, width=256)


def _data_options(root):
    return [f'{split}_dataloader.dataset.data_root={root}'
            for split in ('train', 'val', 'test')]


def _tool(name, *args, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / name), *map(str, args)],
        cwd=REPO, capture_output=True, text=True, env=env, **kwargs)


def _train(work_dir, root, *extra, threads=1):
    """tools/train.py with OMP_NUM_THREADS=``threads`` (torch's default
    thread count)."""
    return _tool('train.py', CONFIG, '--work-dir', work_dir, *extra,
                 '--cfg-options', *_data_options(root), timeout=600,
                 env=dict(os.environ, OMP_NUM_THREADS=str(threads)))


@pytest.fixture(scope='module')
def training(tmp_path_factory, data_root):
    """One uninterrupted 6-iteration run (the reference for resume): its
    work_dir and what it printed."""
    work_dir = tmp_path_factory.mktemp('reference')
    result = _train(work_dir, data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir, result


@pytest.fixture(scope='module')
def trained(training):
    return training[0]


def _checkpoint(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_train_saves_mmseg_checkpoint_and_evaluates(trained):
    ckpt = _checkpoint(trained / 'iter_6.pth')
    assert ckpt['meta']['iter'] == 6
    assert ckpt['meta']['dataset_meta']['classes'][0] == 'road'
    assert any(k.startswith('backbone.stage_4.0.branch_3x3')
               for k in ckpt['state_dict'])
    log = next(trained.glob('*/*.log')).read_text()
    assert 'mIoU' in log and 'road' in log  # per-class table and mean


def test_train_console_is_short_and_ends_with_a_summary(training):
    """The console leaves mmengine's environment, config and hook dumps
    (and its known harmless warnings) to the log file and ends with the
    per-class table, the metrics, the checkpoint and the next command."""
    work_dir, result = training
    log = next(work_dir.glob('*/*.log')).read_text()
    for noise in ('System environment', 'CUDA available', 'Config:',
                  'Hooks will be executed', 'SyncBatchNorm',
                  'The prefix is not set', '"FileClient"'):
        assert noise in log
        assert noise not in result.stdout
    assert 'pin_memory' not in result.stderr  # no GPU: not asked for
    assert 'Warning' not in result.stderr, result.stderr
    checkpoint = work_dir / 'iter_6.pth'
    summary = result.stdout.split('per class results:')[1].splitlines()
    assert any(line.startswith('|      road') for line in summary)
    assert ' - INFO - Trained 6 iterations in ' in summary[-5]
    assert summary[-4].startswith('val mIoU: ')
    assert summary[-3] == f'checkpoint: {checkpoint}'
    assert summary[-2].startswith(f'full log: {work_dir}')
    # paths as the user types them: below the working directory, relative
    assert summary[-1] == ('next: python tools/test.py tests/configs/'
                           f'pspnet_repvgg_tiny_citymini.py {checkpoint}')


def test_a_second_run_gives_the_same_weights(tmp_path, data_root, trained):
    """The configs are seeded and fix torch's threads (a convolution's sums
    split over 2 threads round differently), so README's quick-start figures
    come back whatever OMP_NUM_THREADS or the core count is."""
    result = _train(tmp_path, data_root, threads=2)
    assert result.returncode == 0, result.stderr[-3000:]
    again = _checkpoint(tmp_path / 'iter_6.pth')['state_dict']
    first = _checkpoint(trained / 'iter_6.pth')['state_dict']
    assert again.keys() == first.keys()
    assert all(torch.equal(again[k], first[k]) for k in first)


def test_resume_after_kill_continues_the_same_schedule(
        tmp_path, data_root, trained):
    work_dir = tmp_path / 'interrupted'
    cmd = [sys.executable, str(REPO / 'tools/train.py'), CONFIG,
           '--work-dir', str(work_dir), '--cfg-options',
           *_data_options(data_root)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (work_dir / 'iter_4.pth').exists():
        assert proc.poll() is None and time.time() < deadline, \
            'training ended before it could be interrupted'
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work_dir / 'iter_6.pth').exists()

    result = _train(work_dir, data_root, '--resume')
    assert result.returncode == 0, result.stderr[-3000:]
    # on the console: where the run continues
    assert 'resumed epoch: ' in result.stdout and ', iter: 4' in result.stdout
    resumed = _checkpoint(work_dir / 'iter_6.pth')
    reference = _checkpoint(trained / 'iter_6.pth')
    assert resumed['meta']['iter'] == reference['meta']['iter'] == 6
    assert (resumed['param_schedulers'][0]['last_step'] ==
            reference['param_schedulers'][0]['last_step'])
    assert (resumed['optimizer']['param_groups'][0]['lr'] == pytest.approx(
        reference['optimizer']['param_groups'][0]['lr']))


def test_two_process_distributed_training_on_cpu(tmp_path, data_root):
    result = torchrun_train(CONFIG, tmp_path, '--cfg-options',
                            'train_cfg.max_iters=2', *_data_options(data_root))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'SyncBN layers are built as BN' in log  # a warning: on the console
    assert 'Distributed training: True' in run_logs(tmp_path)
    assert _checkpoint(tmp_path / 'iter_2.pth')['meta']['iter'] == 2


def _cityscapes_scripts_miou(pred_dir, data_root):
    """Mean class IoU of cityscapesscripts' own pixel-level evaluator on the
    label maps ``tools/test.py --out`` wrote (train ids -> label ids)."""
    preds, gts = [], []
    for gt in sorted(glob.glob(f'{data_root}/gtFine/val/*/*_labelIds.png')):
        stem = os.path.basename(gt).replace('_gtFine_labelIds.png', '')
        train_ids = np.asarray(Image.open(
            os.path.join(pred_dir, f'{stem}_leftImg8bit.png')))
        label_ids = np.zeros_like(train_ids)
        for train_id, label in trainId2label.items():
            if 0 <= train_id < 255:
                label_ids[train_ids == train_id] = label.id
        path = os.path.join(pred_dir, f'{stem}_labelIds.png')
        Image.fromarray(label_ids).save(path)
        preds.append(path)
        gts.append(gt)
    args = cs_eval.args
    args.quiet, args.JSONOutput, args.evalPixelAccuracy = True, False, False
    args.evalInstLevelScore = False  # the mini set has no instance maps
    args.exportFile = os.path.join(pred_dir, 'cs_eval.json')
    results = cs_eval.evaluateImgLists(preds, gts, args)
    return 100 * results['averageScoreClasses']


def test_test_tool_miou_agrees_with_cityscapesscripts(
        tmp_path, data_root, trained):
    pred_dir = tmp_path / 'pred'
    result = _tool('test.py', CONFIG, trained / 'iter_6.pth', '--work-dir',
                   tmp_path, '--out', pred_dir, '--cfg-options',
                   *_data_options(data_root), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(next(tmp_path.glob('*/*.json')).read_text())
    assert 'mIoU' in metrics
    assert metrics['mIoU'] == pytest.approx(
        _cityscapes_scripts_miou(pred_dir, data_root), abs=0.01)
