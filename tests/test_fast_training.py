"""What ChannelsLastHook adds besides the layout: the decode losses without
host syncs (the values of MMSeg's; through tools/train.py in
test_channels_last.py) and the bilinear resize as matrix products
(F.interpolate's values)."""
import copy

import pytest
import torch
import torch.nn.functional as F

from helpers import relative_error, step_with_grads, tiny_segmentor
from mmseg.models.decode_heads import FCNHead
from mmseg.models.losses import accuracy
from repvgg_seg.analysis.training import random_batches
from repvgg_seg.engine import use_sync_free_losses
from repvgg_seg.engine.fast_loss import top1_accuracy
from repvgg_seg.models.ops import resize_bilinear


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


def test_sync_free_losses_are_mmsegs_losses_and_gradients():
    cfg, model = tiny_segmentor()
    fast = copy.deepcopy(model)
    assert use_sync_free_losses(fast) == 2  # PSP and FCN heads
    assert use_sync_free_losses(fast) == 0  # once
    batch = random_batches(cfg, batch_size=2, num=1)[0]
    for sample in batch['data_samples']:  # the ignored label too
        sample.gt_sem_seg.data[:, :8] = 255

    _, losses, _, grads = step_with_grads(model, batch)
    _, fast_losses, _, fast_grads = step_with_grads(fast, batch)
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
