"""The sync-free OHEM cross-entropy and DDRNet's head (MMSeg's DDRHead,
also RDRNet's) under ChannelsLastHook: MMSeg's values, accuracies and
gradients, the same training through tools/train.py, and the training
benchmark on a DDRNet config.

On a GPU machine ``pytest tests/test_fast_ohem.py`` also checks that these
losses never wait for the GPU (CUDA's sync debug mode); without CUDA that
test is skipped."""
import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData

from helpers import (build_segmentor, citymini_root, config_with_hook,
                     relative_error, step_with_grads, train_losses)
from mmseg.models.decode_heads import DDRHead
from mmseg.models.losses import OhemCrossEntropy
from mmseg.structures import SegDataSample
from repvgg_seg.analysis.training import random_batches
from repvgg_seg.engine import use_sync_free_losses
from repvgg_seg.engine.fast_loss import use_sync_free_ohem

REPO = Path(__file__).resolve().parents[1]
DDRNET = REPO / 'tests/configs/ddrnet_tiny_citymini.py'
CLASS_WEIGHT = Config.fromfile(DDRNET).class_weight
TOLERANCE = 1e-5


def _scores_and_labels(num_classes, ignored):
    gen = torch.Generator().manual_seed(0)
    score = torch.randn(2, num_classes, 16, 32, generator=gen)
    target = torch.randint(0, num_classes, (2, 16, 32), generator=gen)
    target[torch.rand(target.shape, generator=gen) < ignored] = 255
    return score, target


def _sorted_valid_probs(score, target):
    """MMSeg's ``pred`` after its sort: the valid pixels' true-class
    probabilities, ascending."""
    valid = target != 255
    prob = F.softmax(score, dim=1).gather(
        1, target.masked_fill(~valid, 0).unsqueeze(1)).squeeze(1)
    return prob[valid].sort().values


def _value_and_grad(loss, score, target):
    score = score.clone().requires_grad_()
    value = loss(score, target)
    if value.requires_grad:  # MMSeg's is a constant when all are ignored
        value.backward()
    grad = torch.zeros_like(score) if score.grad is None else score.grad
    return value.detach(), grad


# (thresh, min_kept, ignored share, class weights, what sets the threshold:
# the probability at rank min_kept, thresh, the highest of fewer valid
# pixels than min_kept, nothing (all ignored)), checked on the data below
OHEM_CASES = {
    'threshold from the rank': (0.1, 400, 0.2, True, 'rank'),
    'threshold from thresh': (0.3, 400, 0.2, True, 'thresh'),
    'no class weights': (0.1, 400, 0.2, False, 'rank'),
    'fewer valid pixels, the highest dropped': (0.0, 131072, 0.2, True,
                                                'highest'),
    'fewer valid pixels, all kept': (1.0, 131072, 0.2, True, 'thresh'),
    'all pixels ignored': (0.9, 400, 1.0, True, 'nothing'),
}


@pytest.mark.parametrize('case', OHEM_CASES)
def test_sync_free_ohem_is_mmsegs_value_and_gradient(case):
    thresh, min_kept, ignored, weighted, threshold = OHEM_CASES[case]
    score, target = _scores_and_labels(num_classes=5, ignored=ignored)
    class_weight = CLASS_WEIGHT[:5] if weighted else None
    mmseg = OhemCrossEntropy(thres=thresh, min_kept=min_kept,
                             class_weight=class_weight, loss_weight=0.4)
    sync_free = copy.deepcopy(mmseg)
    use_sync_free_ohem(sync_free)

    probs = _sorted_valid_probs(score, target)
    rank_value = probs[min(min_kept, probs.numel() - 1)] if probs.numel() \
        else None
    assert threshold == ('nothing' if rank_value is None else
                         'thresh' if thresh > rank_value else
                         'rank' if min_kept < probs.numel() else 'highest')
    expected, expected_grad = _value_and_grad(mmseg, score, target)
    value, grad = _value_and_grad(sync_free, score, target)
    assert value.shape == expected.shape == ()
    if probs.numel() == 0:
        assert value == expected == 0 and not grad.any()
    else:
        assert relative_error(value, expected) < TOLERANCE
        assert relative_error(grad, expected_grad) < TOLERANCE
    if threshold == 'highest':  # MMSeg keeps only pred < pred[-1]
        assert (grad.flatten(2) != 0).any(1).sum() == probs.numel() - 1


def test_sync_free_ohem_without_a_pixel_below_the_threshold_is_nan():
    """Equal probabilities and thresh 0: none is below the rank value, so
    MMSeg averages nothing (NaN, gradients 0)."""
    score = torch.zeros(1, 4, 8, 8)
    target = torch.randint(0, 4, (1, 8, 8))
    mmseg = OhemCrossEntropy(thres=0.0, min_kept=10)
    sync_free = copy.deepcopy(mmseg)
    use_sync_free_ohem(sync_free)
    expected, expected_grad = _value_and_grad(mmseg, score, target)
    value, grad = _value_and_grad(sync_free, score, target)
    assert math.isnan(expected) and math.isnan(value)
    assert not expected_grad.any() and not grad.any()


def _ddrnet(thresh=None, min_kept=None):
    cfg = Config.fromfile(DDRNET)
    for loss in cfg.model.decode_head.loss_decode:
        loss.thres = loss.thres if thresh is None else thresh
        loss.min_kept = loss.min_kept if min_kept is None else min_kept
    return cfg, build_segmentor(cfg)


def _assert_grads_equal(grads, expected):
    """Per tensor within TOLERANCE, except those whose gradient is 0 up to
    rounding (e.g. a BN bias feeding only other BNs): both that small."""
    assert grads.keys() == expected.keys() and len(expected) > 100
    scale = max(g.abs().max() for g in expected.values())
    for name, grad in expected.items():
        if grad.abs().max() < 1e-6 * scale:
            assert grads[name].abs().max() < 1e-6 * scale, name
        else:
            assert relative_error(grads[name], grad) < TOLERANCE, name


# thresh 0: the threshold is the probability at rank min_kept (2000 of the
# ~14000 valid pixels) or, with MMSeg's min_kept 131072, the highest one;
# MMSeg's thresh 0.9 is above all of a random net's, so all are kept. (With
# a threshold inside the bulk of the probabilities, ~1/19 here, a pixel
# within float rounding of it can fall on the other side: the upsampling
# rounds differently.)
@pytest.mark.parametrize('thresh,min_kept', [(0.0, 2000), (0.0, 131072),
                                             (0.9, 131072)])
def test_ddr_head_sync_free_losses_are_mmsegs(thresh, min_kept):
    cfg, model = _ddrnet(thresh, min_kept)
    fast = copy.deepcopy(model)
    assert use_sync_free_losses(fast) == 1
    assert use_sync_free_losses(fast) == 0  # once
    assert 'loss_by_feat' in vars(fast.decode_head)
    # the class weights' buffer is not saved: checkpoints are as without
    assert fast.state_dict().keys() == model.state_dict().keys()
    batch = random_batches(cfg, batch_size=2, num=1)[0]
    for sample in batch['data_samples']:
        sample.gt_sem_seg.data[:, :8] = 255

    _, losses, _, grads = step_with_grads(model, batch)
    _, fast_losses, _, fast_grads = step_with_grads(fast, batch)
    assert list(fast_losses) == list(losses) == [
        'decode.loss_context', 'decode.loss_spatial', 'decode.acc_seg']
    for key, value in losses.items():
        assert fast_losses[key].shape == value.shape
        assert relative_error(fast_losses[key], value) < TOLERANCE, key
    _assert_grads_equal(fast_grads, grads)


def test_ddr_head_with_every_pixel_ignored():
    """MMSeg's losses are constant zeros then (its backward would fail:
    nothing requires grad); the sync-free ones are zeros with zero
    gradients."""
    cfg, model = _ddrnet()
    fast = copy.deepcopy(model)
    use_sync_free_losses(fast)
    batch = random_batches(cfg, batch_size=2, num=1)[0]
    for sample in batch['data_samples']:
        sample.gt_sem_seg.data[:] = 255
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model(**data, mode='loss')
    _, fast_losses, _, grads = step_with_grads(fast, batch)
    assert losses.keys() == fast_losses.keys()
    for key, value in losses.items():
        assert fast_losses[key].item() == pytest.approx(value.item()), key
    assert fast_losses['decode.loss_context'] == 0
    assert not any(grad.any() for grad in grads.values())


def test_ddr_head_with_cross_entropy_losses_gets_the_fast_head_only():
    cfg, model = _ddrnet()
    cfg.model.decode_head.loss_decode = [
        dict(type='CrossEntropyLoss', loss_name='loss_ce', loss_weight=w)
        for w in (1.0, 0.4)]
    model = build_segmentor(cfg)
    fast = copy.deepcopy(model)
    assert use_sync_free_losses(fast) == 1
    assert not any('forward' in vars(loss)
                   for loss in fast.decode_head.loss_decode)
    # DDRHead gives these losses no ignore_index: labels 0..18 only
    batch = random_batches(cfg, batch_size=2, num=1)[0]
    _, losses, _, grads = step_with_grads(model, batch)
    _, fast_losses, _, fast_grads = step_with_grads(fast, batch)
    for key, value in losses.items():
        assert relative_error(fast_losses[key], value) < TOLERANCE, key
    _assert_grads_equal(fast_grads, grads)


def test_ddr_heads_with_losses_it_does_not_know_are_left_alone():
    class OwnOhem(OhemCrossEntropy):
        pass

    class OwnLossDDRHead(DDRHead):
        def loss_by_feat(self, seg_logits, batch_data_samples):
            return {}

    ohem = dict(type='OhemCrossEntropy')
    unknown_loss = DDRHead(in_channels=8, channels=4, num_classes=3,
                           loss_decode=[ohem, ohem])
    unknown_loss.loss_decode[1] = OwnOhem()
    own_loss_by_feat = OwnLossDDRHead(in_channels=8, channels=4,
                                      num_classes=3,
                                      loss_decode=[ohem, ohem])
    for head in (unknown_loss, own_loss_by_feat):
        assert use_sync_free_losses(head) == 0
        assert 'loss_by_feat' not in vars(head)
        assert not any('forward' in vars(loss) for loss in head.loss_decode)


# ---- through tools/train.py and the training benchmark ---------------------
@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 4, 2, height=128, width=256)


def test_ddrnet_training_with_the_switch_sees_the_same_losses(
        tmp_path, data_root):
    """Seeded tools/train.py runs with and without the hook see the same
    batches and losses. At a learning rate of ~0 (0 is refused): this tiny
    DDRNet's fp32 gradients amplify rounding (BN over the few values of its
    1/64-scale branch; NCHW and channels_last agree in float64), so after
    real steps two runs drift apart whatever computes the loss; the
    gradients are compared above."""
    with_hook = config_with_hook(tmp_path, DDRNET)
    options = ['optim_wrapper.optimizer.lr=1e-12',
               'param_scheduler.0.eta_min=0',
               # OHEM that picks: the 2000 hardest pixels of each batch
               *(f'model.decode_head.loss_decode.{i}.{key}'
                 for i in (0, 1) for key in ('thres=0.0', 'min_kept=2000'))]
    _, plain = train_losses(DDRNET, tmp_path / 'plain', data_root, *options)
    log, fast = train_losses(with_hook, tmp_path / 'fast', data_root,
                             *options)
    assert '1 decode head losses without host syncs' in log
    assert len(plain) == len(fast) == 4 and len(set(plain)) == 4
    assert fast == pytest.approx(plain, rel=TOLERANCE)


@pytest.fixture
def fp16_device(monkeypatch):
    """Where mixed-precision training runs: the GPU if there is one, else
    the CPU, where torch's autocast stands in for mmengine's (its
    AmpOptimWrapper wants a GPU and its autocast refuses fp16 on the CPU;
    the loss scaler disables itself without CUDA)."""
    enabled = torch.backends.mkldnn.enabled
    if torch.cuda.is_available():
        yield 'cuda'
    else:
        import mmengine.runner.amp
        from mmengine.optim.optimizer import amp_optimizer_wrapper
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                            lambda: True)
        monkeypatch.setattr(mmengine.runner.amp, 'autocast',
                            lambda dtype: torch.autocast('cpu', dtype=dtype))
        yield 'cpu'
    torch.backends.mkldnn.enabled = enabled  # channels_last turns it off


# on the CPU, mmengine builds its (then disabled) CUDA grad scaler anyway
@pytest.mark.filterwarnings('ignore:`torch.cuda.amp.GradScaler:FutureWarning')
@pytest.mark.filterwarnings('ignore:torch.cuda.amp.GradScaler is enabled')
def test_training_benchmark_measures_mmsegs_amp_and_ours_on_ddrnet(
        fp16_device):
    from repvgg_seg.analysis import training
    result = training.run([str(DDRNET)], ['nchw-fp16', 'cl-fp16'],
                          fp16_device, batch_size=2, warmup=1, iters=1)
    rows = result['rows']
    assert [r['variant'] for r in rows] == ['nchw-fp16', 'cl-fp16']
    for row in rows:
        assert row['model'] == 'ddrnet_tiny_citymini'
        assert row['crop'] == [64, 128] and row['batch_size'] == 2
        assert row['ms_per_iter'] > 0 and math.isfinite(row['final_loss'])


@pytest.mark.parametrize('name', [
    'ddrnet-23-slim',
    'mmseg::ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py'])
def test_training_benchmark_takes_mmsegs_ddrnet_at_batch_12(name):
    from repvgg_seg.analysis import training
    cfg = training.load_train_config(name, batch_size=12)
    assert cfg.train_dataloader.batch_size == 12
    assert tuple(cfg.model.data_preprocessor.size) == (1024, 1024)
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.decode_head.type == 'DDRHead'
    assert training._short_name(name) == 'ddrnet_23-slim_in1k-pre (mmseg)'


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='host syncs are only observable on a GPU')
def test_sync_free_ddr_losses_never_wait_for_the_gpu():
    """The DDR head's losses (1024x1024 labels, MMSeg's min_kept and class
    weights) forward and backward under CUDA's sync debug mode 'error',
    in fp16 autocast as --amp trains; MMSeg's own would raise there."""
    device = torch.device('cuda')
    head = DDRHead(in_channels=32, channels=16, num_classes=19,
                   loss_decode=Config.fromfile(
                       DDRNET).model.decode_head.loss_decode).to(device)
    sync_free = copy.deepcopy(head)
    assert use_sync_free_losses(sync_free) == 1
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(2, 19, 128, 128, generator=gen).to(device)
              for _ in range(2)]
    labels = torch.randint(0, 19, (2, 1, 1024, 1024), generator=gen)
    labels[:, :, :100] = 255
    samples = [SegDataSample(gt_sem_seg=PixelData(data=label.to(device)))
               for label in labels]

    def losses(model, dtype=None):
        leaves = [x.clone().requires_grad_() for x in logits]
        with torch.autocast('cuda', dtype=dtype or torch.float16,
                            enabled=dtype is not None):
            out = model.loss_by_feat(
                [x.to(dtype or x.dtype) for x in leaves], samples)
        sum(v for k, v in out.items() if 'loss' in k).backward()
        return out, [x.grad for x in leaves]

    expected, expected_grads = losses(head)
    values, grads = losses(sync_free)  # warm-up: resize matrices, cuBLAS
    for key, value in expected.items():
        assert relative_error(values[key], value) < TOLERANCE, key
    for grad, expected_grad in zip(grads, expected_grads):
        assert relative_error(grad, expected_grad) < TOLERANCE
    losses(sync_free, torch.float16)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        losses(sync_free, torch.float16)
        losses(sync_free)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    with pytest.raises(RuntimeError, match='synchroniz'):
        torch.cuda.set_sync_debug_mode('error')
        try:
            losses(head)
        finally:
            torch.cuda.set_sync_debug_mode('default')
