"""Channels-last training (ChannelsLastHook): the same numbers as NCHW,
checkpoints in the usual format either way, resume; and --amp without a GPU
failing in one line."""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from helpers import (citymini_root, config_with_hook, data_root_options,
                     relative_error, run_logs, run_tool, step_with_grads,
                     tiny_segmentor, torchrun_train, train, train_losses)
from repvgg_seg.analysis.training import random_batches
from repvgg_seg.engine import ChannelsLastHook, to_channels_last

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'tests/configs/pspnet_repvgg_tiny_citymini.py'
CL = torch.channels_last
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def keep_onednn_setting():
    """to_channels_last turns oneDNN off on the CPU; restore it after."""
    enabled = torch.backends.mkldnn.enabled
    yield
    torch.backends.mkldnn.enabled = enabled


@pytest.mark.parametrize('with_cp', [False, True])
def test_channels_last_step_gives_the_nchw_loss_and_gradients(with_cp):
    cfg, nchw = tiny_segmentor(with_cp)
    channels_last = to_channels_last(copy.deepcopy(nchw))
    # batch 4: the PPM's 1x1-pooled branch normalises over the batch, and
    # over 2 values BN's output is +-1 whatever its input, so its weight
    # gradient is rounding noise around 0
    batch = random_batches(cfg, batch_size=4, num=1)[0]

    inputs, _, loss, grads = step_with_grads(nchw, batch)
    cl_inputs, _, cl_loss, cl_grads = step_with_grads(channels_last, batch)

    stem = 'backbone.stem.branch_3x3.conv.weight'
    # PSP's pyramid pools with matrix products (PyTorch's NHWC adaptive
    # pooling is slow); the state dict is that of the NCHW model
    assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in nchw.modules())
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d)
                   for m in channels_last.modules())
    assert channels_last.state_dict().keys() == nchw.state_dict().keys()
    assert not inputs.is_contiguous(memory_format=CL)
    assert cl_inputs.is_contiguous(memory_format=CL)
    assert dict(channels_last.named_parameters())[stem].is_contiguous(
        memory_format=CL)
    assert not dict(nchw.named_parameters())[stem].is_contiguous(
        memory_format=CL)
    assert relative_error(cl_loss, loss) < TOLERANCE
    assert grads.keys() == cl_grads.keys() and len(grads) > 20
    for name, grad in grads.items():
        assert relative_error(cl_grads[name], grad) < TOLERANCE, name


class _Runner:
    """What the hook reads of an mmengine Runner."""

    def __init__(self, model):
        self.model = model
        self.optim_wrapper = None


def test_hook_is_a_no_op_on_the_cpu_and_in_fp32():
    _, model = tiny_segmentor()
    for hook in (ChannelsLastHook(), ChannelsLastHook(amp_only=False),
                 ChannelsLastHook(amp_only=False, on_cpu=True,
                                  enabled=False)):
        hook.before_train(_Runner(model))
        assert not hook.active
    weight = model.backbone.stem.branch_3x3.conv.weight
    assert not weight.is_contiguous(memory_format=CL)
    hook = ChannelsLastHook(amp_only=False, on_cpu=True)
    hook.before_train(_Runner(model))
    assert hook.active and weight.is_contiguous(memory_format=CL)
    checkpoint = dict(state_dict=model.state_dict(), meta={})
    hook.before_save_checkpoint(_Runner(model), checkpoint)
    assert all(t.is_contiguous() for t in checkpoint['state_dict'].values())


# ---- through tools/train.py and tools/test.py ------------------------------
@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 4, 2, height=128, width=256)


@pytest.fixture(scope='module')
def cl_config(tmp_path_factory):
    """The tiny config with the switch forced on (on the CPU, in fp32)."""
    return config_with_hook(tmp_path_factory.mktemp('config'), CONFIG)


ACTIVE = 'ChannelsLastHook: model and batches are channels_last'
SYNC_FREE = '2 decode head losses without host syncs'


def _test(config, checkpoint, work_dir, root):
    result = run_tool('test.py', config, checkpoint, '--work-dir', work_dir,
                      *data_root_options(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr + run_logs(work_dir)


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def cl_run(tmp_path_factory, data_root, cl_config):
    work_dir = tmp_path_factory.mktemp('cl_run')
    log = train(cl_config, work_dir, data_root)
    assert ACTIVE in log
    return work_dir


def test_checkpoint_with_the_switch_is_the_usual_format_and_tests_without(
        cl_run, data_root, tmp_path):
    ckpt = _load(cl_run / 'iter_6.pth')
    tensors = list(ckpt['state_dict'].values()) + [
        value for state in ckpt['optimizer']['state'].values()
        for value in state.values() if isinstance(value, torch.Tensor)]
    assert any(t.dim() == 4 for t in tensors)
    assert all(t.is_contiguous() for t in tensors)
    log = _test(CONFIG, cl_run / 'iter_6.pth', tmp_path, data_root)
    assert 'mIoU' in log and ACTIVE not in log


def test_checkpoint_without_the_switch_tests_with_it(data_root, cl_config,
                                                     tmp_path):
    log = train(CONFIG, tmp_path / 'nchw', data_root, iters=2)
    assert ACTIVE not in log
    log = _test(cl_config, tmp_path / 'nchw/iter_2.pth', tmp_path / 'test',
                data_root)
    assert 'mIoU' in log and ACTIVE in log


def test_resume_with_the_switch(cl_run, data_root, cl_config, tmp_path):
    work_dir = tmp_path / 'resumed'
    work_dir.mkdir()
    (work_dir / 'iter_4.pth').write_bytes((cl_run / 'iter_4.pth').read_bytes())
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_4.pth'))
    log = train(cl_config, work_dir, data_root, args=['--resume'])
    assert 'resumed' in log.lower() and ACTIVE in log
    resumed, reference = (_load(d / 'iter_6.pth') for d in (work_dir, cl_run))
    assert resumed['meta']['iter'] == reference['meta']['iter'] == 6
    assert (resumed['optimizer']['param_groups'][0]['lr'] == pytest.approx(
        reference['optimizer']['param_groups'][0]['lr']))
    assert all(v.is_contiguous() for v in resumed['state_dict'].values())


def _train_losses(config, work_dir, root):
    """Per-iteration losses of 4 seeded iterations (no dropout: it draws
    its mask in memory order)."""
    return train_losses(config, work_dir, root,
                        'model.decode_head.dropout_ratio=0',
                        'model.auxiliary_head.dropout_ratio=0')


def test_training_with_the_switch_sees_the_same_batches_and_losses(
        tmp_path, data_root, cl_config):
    _, plain = _train_losses(CONFIG, tmp_path / 'plain', data_root)
    log, fast = _train_losses(cl_config, tmp_path / 'fast', data_root)
    assert SYNC_FREE in log
    assert len(plain) == len(fast) == 4
    # random crops and flips: another batch changes the loss by far more
    # than the layout's and the sync-free losses' rounding
    assert fast == pytest.approx(plain, rel=1e-3)


def test_two_process_distributed_training_with_the_switch(
        tmp_path, data_root, cl_config):
    result = torchrun_train(
        cl_config, tmp_path,
        *data_root_options(data_root, 'train_cfg.max_iters=2'))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    log += run_logs(tmp_path)
    assert 'Distributed training: True' in log and SYNC_FREE in log
    checkpoint = _load(tmp_path / 'iter_2.pth')
    assert checkpoint['meta']['iter'] == 2
    assert all(t.is_contiguous() for t in checkpoint['state_dict'].values())


def test_amp_without_a_gpu_is_one_line_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    result = run_tool('train.py', CONFIG, '--amp', '--work-dir', tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1 and 'GPU' in errors[0]
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('config', [
    'mmseg::pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py',  # no hooks
    str(REPO / 'configs/pspnet_repvgg_b2-fast.py')])  # has it already
def test_amp_trains_any_config_in_channels_last(config, monkeypatch):
    from repvgg_seg.apis.runner import enable_amp
    from repvgg_seg.utils import read_config
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = read_config(config)
    enable_amp(cfg, 'bf16')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert [h['type'] for h in cfg.custom_hooks].count('ChannelsLastHook') == 1


def test_training_benchmark_reports_both_layouts_and_a_real_run(
        cl_run, tmp_path):
    from repvgg_seg.analysis import training
    result = training.run([str(CONFIG)], ['nchw-fp32', 'cl-fp32'], 'cpu',
                          batch_size=2, warmup=1, iters=2)
    assert [r['variant'] for r in result['rows']] == ['nchw-fp32', 'cl-fp32']
    assert all(r['ms_per_iter'] > 0 and r['images_per_s'] > 0
               for r in result['rows'])
    scalars = next(cl_run.glob('*/vis_data/scalars.json'))
    md = tmp_path / 'bench.md'
    md.write_text('# Benchmarks\n\nkept\n')
    training.report(result, 'Training speed, test', 'cmd',
                    out=tmp_path / 'r.json', out_md=md,
                    train_logs=[f'tiny={scalars}=python tools/train.py x'],
                    skip=2)
    text = md.read_text()
    assert 'kept' in text and '| tiny | ' in text
    assert '<!-- benchmark:training-training-speed-test:start -->' in text
    assert text.count('| pspnet_repvgg_tiny_citymini |') == 2
    summary = training.load_result(tmp_path / 'r.json')['train_logs']['tiny']
    assert (summary['first_iter'], summary['last_iter']) == (3, 6)
    assert summary['s_per_iter'] > 0
