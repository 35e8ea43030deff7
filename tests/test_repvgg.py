"""RepVGG backbone: every arch, exact fusion, segmentation options, counts."""
import copy

import pytest
import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from helpers import (assert_features_close, assert_fuses_exactly, build,
                     features, images, load_tool, randomize_norms)
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_seg.models import ARCH_SETTINGS
from repvgg_seg.analysis.arch_table import (PAPER_NUMBERS, TABLE_END,
                                            TABLE_START, count_gflops,
                                            count_params, truncated_millions)
from repvgg_seg.utils import run_cli

#: A quarter of the real widths keeps every arch's structure (blocks, groups,
#: SE) while making the tests fast.
SMALL = dict(base_channels=16)
DILATED = dict(strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4))


def blocks_in_order(model):
    return [model.stem] + [b for name in model.stages
                           for b in getattr(model, name)]


@pytest.mark.parametrize('arch', list(ARCH_SETTINGS))
def test_every_arch_fuses_exactly(arch):
    # Random BN statistics make the 47-layer SE net (D2se) chaotic: a 1e-7
    # change of its input moves its output by 1e-4, so fp32 rounding alone
    # exceeds the tolerance on some inputs; it is checked in float64.
    dtype = torch.float64 if ARCH_SETTINGS[arch]['se_cfg'] else torch.float32
    torch.manual_seed(0)
    model = randomize_norms(build(arch=arch, **SMALL)).to(dtype)
    assert_fuses_exactly(model, images(2, 32, dtype))


@pytest.mark.parametrize('arch', list(PAPER_NUMBERS))
def test_fused_params_match_paper(arch):
    paper_params, _ = PAPER_NUMBERS[arch]
    fused = count_params(arch, deploy=True)
    assert truncated_millions(fused) == paper_params
    assert count_params(arch) > fused  # the BNs and 1x1 convs fused away


@pytest.mark.parametrize('arch', ['A0', 'B1g2'])
def test_fused_gflops_match_paper(arch):
    assert round(count_gflops(arch, deploy=True), 1) == PAPER_NUMBERS[arch][1]


def test_analyze_tool_updates_only_the_readme_table(tmp_path, capsys):
    analyze = load_tool('analyze_archs')
    readme = tmp_path / 'README.md'
    readme.write_text(f'# Title\n{TABLE_START}\nold table\n'
                      f'{TABLE_END}\nafter\n')
    assert analyze.main(['--archs', 'A0', '--update-readme',
                         str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(f'# Title\n{TABLE_START}\n| arch ')
    assert text.endswith(f'{TABLE_END}\nafter\n')
    assert 'old table' not in text
    assert '| A0   | 9.10 ' in text and '| 1.36 ' in text  # train params
    assert capsys.readouterr().out.splitlines()[2].split() == [
        'A0', '9.10', '8.30', '1.52', '1.36', '8.30', '1.4']


def test_analyze_tool_refuses_a_readme_without_markers(tmp_path, capsys):
    readme = tmp_path / 'README.md'
    readme.write_text('# Title\n')
    with pytest.raises(SystemExit) as exit_info:
        run_cli(load_tool('analyze_archs').main, ['--update-readme',
                                                  str(readme)])
    assert exit_info.value.code == 2
    assert 'has no <!-- arch-table:start -->' in capsys.readouterr().err
    assert readme.read_text() == '# Title\n'


@pytest.mark.parametrize('arch', ['A0', 'B1g4'])
@pytest.mark.parametrize('num_dilated_layers', [None, 5])
def test_dilated_fuses_exactly_at_output_stride_8(arch, num_dilated_layers):
    model = randomize_norms(build(
        arch=arch, num_dilated_layers=num_dilated_layers, **SMALL, **DILATED))
    x = images(1, 64)
    assert [o.shape[-1] for o in features(model, x)] == [16, 8, 8, 8]
    assert_fuses_exactly(model, x)


@pytest.mark.parametrize('num_dilated_layers, expected_tail', [
    (None, [1] * 6 + [2] * 14 + [4]),
    (5, [1] * 6 + [1] * 10 + [2] * 4 + [4]),
])
def test_num_dilated_layers_dilates_exactly_the_last_layers(
        num_dilated_layers, expected_tail):
    model = build(arch='A0', num_dilated_layers=num_dilated_layers, **SMALL,
                  **DILATED)
    convs = [b.branch_3x3.conv for b in blocks_in_order(model)]
    assert [c.dilation[0] for c in convs] == [1] + expected_tail
    assert all(c.padding == c.dilation for c in convs)
    model.switch_to_deploy()
    fused = [b.branch_reparam for b in blocks_in_order(model)]
    assert [c.dilation[0] for c in fused] == [1] + expected_tail
    assert all(c.padding == c.dilation for c in fused)


def test_grouped_layers_are_the_even_ones():
    groups = [b.branch_3x3.conv.groups
              for b in blocks_in_order(build(arch='B1g4', **SMALL))]
    assert groups == [4 if i % 2 == 0 and 0 < i <= 26 else 1
                      for i in range(len(groups))]


def test_deploy_built_model_loads_fused_weights():
    trained = randomize_norms(build(arch='A0', **SMALL))
    x = images(2, 32)
    expected = features(trained, x)
    trained.switch_to_deploy()

    deployed = build(arch='A0', deploy=True, **SMALL)
    names = [name for name, _ in deployed.named_modules()]
    assert not any('branch_3x3' in n or 'branch_1x1' in n
                   or 'branch_norm' in n for n in names)
    assert sum(n.endswith('branch_reparam') for n in names) == 22
    deployed.load_state_dict(trained.state_dict())  # strict
    outputs = features(deployed, x)
    assert all(torch.equal(a, b)
               for a, b in zip(outputs, features(trained, x)))
    assert_features_close(outputs, expected)


def _sync_bn_forward_on_cpu(self, x):
    """SyncBatchNorm's training forward for CPU tensors.

    torch refuses CPU input to SyncBatchNorm once a process group exists, and
    its statistics kernel (``batch_norm_stats``) is CUDA-only, so the same
    cross-process statistics are computed here with an autograd-aware gloo
    all_reduce, and the running stats updated as SyncBatchNorm does.
    """
    if not self.training:
        return F.batch_norm(x, self.running_mean, self.running_var,
                            self.weight, self.bias, False, 0.0, self.eps)
    channels, dims = x.shape[1], (0, 2, 3)
    local = torch.cat([x.sum(dims), (x * x).sum(dims),
                       x.new_tensor([x.numel() / channels])])
    total = dist_nn.all_reduce(local)
    count = total[-1]
    mean = total[:channels] / count
    var = total[channels:2 * channels] / count - mean * mean
    with torch.no_grad():
        self.running_mean.lerp_(mean, self.momentum)
        self.running_var.lerp_(var * count / (count - 1), self.momentum)
        self.num_batches_tracked += 1
    scale = self.weight / torch.sqrt(var + self.eps)
    return ((x - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) +
            self.bias.view(1, -1, 1, 1))


def _train_with_sync_bn_then_fuse(rank, init_file):
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    try:
        nn.SyncBatchNorm.forward = _sync_bn_forward_on_cpu
        torch.manual_seed(0)
        model = build(arch='A0', norm_cfg=dict(type='SyncBN'), **SMALL)
        assert all(isinstance(m, nn.SyncBatchNorm)
                   for m in model.modules() if isinstance(m, _BatchNorm))
        # DDP refuses SyncBN on CPU, so gradients are averaged by hand; no
        # buffer is broadcast: equal stats on both ranks must come from sync.
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        torch.manual_seed(1 + rank)  # each rank sees different images
        for _ in range(3):
            loss = sum(o.square().mean()
                       for o in model.train()(torch.randn(2, 3, 32, 32)))
            optimizer.zero_grad()
            loss.backward()
            for param in model.parameters():
                dist.all_reduce(param.grad)
                param.grad /= 2
            optimizer.step()

        stats = torch.cat([b.float().flatten() for b in model.buffers()])
        gathered = [torch.empty_like(stats) for _ in range(2)]
        dist.all_gather(gathered, stats)
        assert torch.equal(gathered[0], gathered[1])
        running_var = model.stem.branch_3x3.bn.running_var
        assert not torch.equal(running_var, torch.ones_like(running_var))
        assert_fuses_exactly(model, images(2, 32))
    finally:
        dist.destroy_process_group()


def test_sync_bn_trained_model_fuses_exactly(tmp_path):
    mp.spawn(_train_with_sync_bn_then_fuse, args=(str(tmp_path / 'pg'), ),
             nprocs=2)


def test_out_indices_select_stages():
    model = build(arch='A0', out_indices=(1, 3), **SMALL)
    outs = features(model, torch.randn(1, 3, 64, 64))
    assert [o.shape[1:] for o in outs] == [(model.out_channels[1], 8, 8),
                                           (model.out_channels[3], 2, 2)]


def test_frozen_stages_freeze_params_and_norm_stats():
    model = build(arch='A0', frozen_stages=1, **SMALL).train()
    frozen = [model.stem, model.stage_1]
    trained = [model.stage_2, model.stage_3, model.stage_4]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in trained for p in m.parameters())
    assert not any(m.training for f in frozen for m in f.modules())
    assert all(m.training for t in trained for m in t.modules())

    before = copy.deepcopy(model.state_dict())
    model(torch.randn(2, 3, 32, 32))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(('stage_2', 'stage_3', 'stage_4'))
                           for k in changed)


def test_norm_eval_keeps_norm_stats_but_trains_weights():
    model = build(arch='A0', norm_eval=True, **SMALL).train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert all(p.requires_grad for p in model.parameters())
    assert model.stage_1[0].branch_3x3.conv.training
    before = [m.running_mean.clone() for m in norms]
    model(torch.randn(2, 3, 32, 32))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))


def test_with_cp_gives_the_same_gradients_and_norm_stats():
    plain = build(arch='A0', **SMALL)
    checkpointed = build(arch='A0', with_cp=True, **SMALL)
    checkpointed.load_state_dict(plain.state_dict())
    calls = []
    checkpointed.stage_2[0].branch_3x3.register_forward_hook(
        lambda *_: calls.append(1))
    x = torch.randn(2, 3, 32, 32)
    for model in (plain, checkpointed):
        sum(o.square().mean() for o in model.train()(x)).backward()
    assert len(calls) == 2  # forward + recompute: checkpointing is on
    for (name, p), q in zip(plain.named_parameters(),
                            checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    # The recompute pass must not update BN running stats a second time.
    for (name, b), c in zip(plain.named_buffers(), checkpointed.buffers()):
        assert torch.equal(b, c), name


def test_custom_arch_dict():
    arch = dict(num_blocks=(1, 2, 2, 1), width_factor=(0.5, 0.5, 0.5, 1),
                group_layer_map={2: 2})
    model = randomize_norms(build(arch=arch))
    assert model.arch_name == 'custom'
    assert model.out_channels == [32, 64, 128, 512]
    assert model.stage_2[0].branch_3x3.conv.groups == 2
    assert model.stage_2[1].branch_3x3.conv.groups == 1
    assert_fuses_exactly(model, images(1, 32))


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(arch='C9'), KeyError, r"unknown arch 'C9'; choose one of"),
    (dict(arch=dict(num_blocks=(1, 1, 1, 1))), KeyError, 'width_factor'),
    (dict(strides=(2, 2, 2)), ValueError, r'strides needs 4 values'),
    (dict(dilations=(1, 2)), ValueError, r'dilations needs 4 values'),
    (dict(out_indices=(4, )), ValueError, r'out_indices must lie in 0\.\.3'),
])
def test_bad_arguments_give_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        build(**{'arch': 'A0', **kwargs})
