"""What ChannelsLastHook adds besides the layout: the decode losses without
host syncs (the values of MMSeg's, through tools/train.py too, with DDP),
and the bilinear resize as matrix products (F.interpolate's values)."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from helpers import relative_error
from mmseg.models.decode_heads import FCNHead
from mmseg.models.losses import accuracy
from mmseg.registry import MODELS
from repvgg_seg.analysis.training import random_batches
from repvgg_seg.datasets import generate_citymini, prepare_cityscapes
from repvgg_seg.engine import use_sync_free_losses
from repvgg_seg.engine.fast_loss import top1_accuracy
from repvgg_seg.models.ops import resize_bilinear

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'tests/configs/pspnet_repvgg_tiny_citymini.py'


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('sizes', [((8, 16), (64, 128)), ((7, 5), (13, 29)),
                                   ((10, 10), (5, 3)), ((1, 3), (4, 9))])
def test_resize_bilinear_is_f_interpolate(sizes, align_corners):
    (h, w), size = sizes
    x = torch.randn(2, 3, h, w, dtype=torch.float64).float()
    expected = F.interpolate(x, size, mode='bilinear',
                             align_corners=align_corners)
    actual = resize_bilinear(x.contiguous(memory_format=torch.channels_last),
                             size, align_corners)
    assert actual.shape == expected.shape and actual.dtype == torch.float32
    assert relative_error(actual, expected) < 1e-5


@pytest.mark.parametrize('ignore_index', [None, 255])
def test_top1_accuracy_is_mmsegs(ignore_index):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 19, 16, 32, generator=gen)
    target = torch.randint(0, 19, (2, 16, 32), generator=gen)
    target[0, :4] = 255
    target[1, 5:9] = logits[1, :, 5:9].argmax(0)  # some right, not by chance
    expected = accuracy(logits, target, ignore_index=ignore_index)
    actual = top1_accuracy(logits, target, ignore_index)
    assert actual.shape == expected.shape == (1,)
    assert actual.item() == pytest.approx(expected.item(), rel=1e-6)
    everything_ignored = torch.full_like(target, 255)
    assert top1_accuracy(logits, everything_ignored, 255).item() == \
        pytest.approx(accuracy(logits, everything_ignored,
                               ignore_index=255).item())


def _tiny_model():
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.decode_head.dropout_ratio = 0
    cfg.model.auxiliary_head.dropout_ratio = 0
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return cfg, model.train()


def _losses_and_grads(model, batch):
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    return losses, {n: p.grad for n, p in model.named_parameters()
                    if p.grad is not None}


def test_sync_free_losses_are_mmsegs_losses_and_gradients():
    cfg, model = _tiny_model()
    fast = copy.deepcopy(model)
    assert use_sync_free_losses(fast) == 2  # PSP and FCN heads
    assert use_sync_free_losses(fast) == 0  # once
    batch = random_batches(cfg, batch_size=2, num=1)[0]
    for sample in batch['data_samples']:  # the ignored label too
        sample.gt_sem_seg.data[:, :8] = 255

    losses, grads = _losses_and_grads(model, batch)
    fast_losses, fast_grads = _losses_and_grads(fast, batch)
    assert fast_losses.keys() == losses.keys() == {
        'decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce', 'aux.acc_seg'}
    for key, value in losses.items():
        assert fast_losses[key].shape == value.shape
        assert relative_error(fast_losses[key], value) < 1e-5, key
    assert grads.keys() == fast_grads.keys() and len(grads) > 20
    for name, grad in grads.items():
        assert relative_error(fast_grads[name], grad) < 1e-5, name


def test_heads_with_their_own_loss_are_left_alone():
    class OwnLossHead(FCNHead):
        def loss_by_feat(self, seg_logits, batch_data_samples):
            return {}

    head = OwnLossHead(in_channels=8, channels=4, num_classes=3)
    assert use_sync_free_losses(head) == 0
    assert 'loss_by_feat' not in vars(head)


# ---- end to end: tools/train.py with and without the hook -----------------
@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'citymini'
    generate_citymini(root, num_train=4, num_val=1, height=128, width=256)
    prepare_cityscapes(root, nproc=1)
    return root


@pytest.fixture(scope='module')
def fast_config(tmp_path_factory):
    """The tiny config with the hook forced on (on the CPU, in fp32)."""
    config = tmp_path_factory.mktemp('config') / 'tiny_fast.py'
    config.write_text(
        f"_base_ = ['{CONFIG}']\n"
        "custom_hooks = [dict(type='ChannelsLastHook', amp_only=False,\n"
        "                     on_cpu=True)]\n")
    return config


ACTIVE = '2 decode head losses without host syncs'


def _data_options(root):
    return [f'{split}_dataloader.dataset.data_root={root}'
            for split in ('train', 'val', 'test')]


def _train_losses(config, work_dir, root):
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools/train.py'), str(config),
         '--work-dir', str(work_dir), '--cfg-options', 'randomness.seed=0',
         'train_cfg.max_iters=4', 'model.decode_head.dropout_ratio=0',
         'model.auxiliary_head.dropout_ratio=0', *_data_options(root)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = next(Path(work_dir).glob('*/vis_data/scalars.json'))
    entries = [json.loads(line) for line in scalars.read_text().splitlines()]
    return result.stdout + result.stderr, [e['loss'] for e in entries
                                           if 'loss' in e]


def test_training_with_the_hook_sees_the_same_batches_and_losses(
        tmp_path, data_root, fast_config):
    _, plain = _train_losses(CONFIG, tmp_path / 'plain', data_root)
    log, fast = _train_losses(fast_config, tmp_path / 'fast', data_root)
    assert ACTIVE in log
    assert len(plain) == len(fast) == 4
    # random crops and flips: another batch changes the loss by far more
    # than the layout's and the losses' rounding
    assert fast == pytest.approx(plain, rel=1e-3)


def test_two_process_distributed_training_with_the_hook(
        tmp_path, data_root, fast_config):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--standalone', str(REPO / 'tools/train.py'), str(fast_config),
         '--launcher', 'pytorch', '--work-dir', str(tmp_path),
         '--cfg-options', 'train_cfg.max_iters=2', *_data_options(data_root)],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log and ACTIVE in log
    checkpoint = torch.load(tmp_path / 'iter_2.pth', map_location='cpu',
                            weights_only=True)
    assert checkpoint['meta']['iter'] == 2
    assert all(t.is_contiguous() for t in checkpoint['state_dict'].values())
