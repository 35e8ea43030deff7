"""tools/benchmark.py and the fast inference path, on the CPU at tiny sizes."""
import copy
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from helpers import REPO_ROOT, load_tool
from mmcv.cnn import ConvModule

from repvgg_seg.analysis.candidates import (BASELINES, baseline_config,
                                            build_segmentor, config_name,
                                            has_norms)
from repvgg_seg.analysis.plots import plot_accuracy
from repvgg_seg.analysis.published import published_miou
from repvgg_seg.analysis.measure import reference_labels
from repvgg_seg.analysis.report import (fastest_correct_variants,
                                        update_markdown)
from repvgg_seg.analysis.variants import parse_variant, variant_name
from repvgg_seg.deploy.fast_path import (ConvReLU, FastSegmenter,
                                         FoldedPSPHead,
                                         conv_relu_pairs,
                                         optimize_for_inference)
from repvgg_seg.models.ops import MatMulAdaptiveAvgPool2d
from repvgg_seg.utils.config import read_config
from repvgg_seg.utils.errors import InvalidArgument, UserError
from repvgg_seg.deploy.fuse import DeployError, fuse_model, unfolded_norms
from repvgg_seg.models import RepVGGBlock
from repvgg_seg.models.backbones import RB

#: A RepVGG PSPNet small enough to time in a test (one block per stage).
TINY_CONFIG = f"""
_base_ = ['{REPO_ROOT}/configs/pspnet_repvgg_a0-fast.py']
model = dict(
    backbone=dict(arch=dict(_delete_=True, num_blocks=(1, 1, 1, 1),
                            width_factor=(0.25, 0.25, 0.25, 0.5),
                            group_layer_map={{2: 2}}),
                  num_dilated_layers=3),
    decode_head=dict(in_channels=256, channels=16),
    auxiliary_head=dict(in_channels=64, channels=8))
"""
SHAPE = (64, 128)


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'pspnet_repvgg_tiny.py'
    path.write_text(TINY_CONFIG)
    return str(path)


@pytest.fixture(scope='module')
def tiny_model(tiny_config):
    return build_segmentor(read_config(tiny_config), None, torch.device('cpu'),
                           (2, 3, 32, 64))


def test_tool_measures_both_forms_and_a_baseline(tiny_config, tmp_path):
    pytest.importorskip('matplotlib')
    out, plot, md = (tmp_path / n for n in ('r.json', 'r.png', 'b.md'))
    argv = [tiny_config, '--device', 'cpu', '--shape', *map(str, SHAPE),
            '--repeat', '2', '--warmup', '1', '--baseline', 'pspnet_r18-d8',
            '--fast-path', 'fp32+eager+nchw', 'fp32+eager',
            '--out', str(out), '--plot', str(plot), '--out-md', str(md)]
    load_tool('benchmark').main(argv)

    result = json.loads(out.read_text())
    assert result['command'].startswith('python tools/benchmark.py')
    assert {'device', 'torch', 'date'} <= set(result['env'])
    forms = [(r['model'], r['form']) for r in result['records']]
    assert forms == [('pspnet_repvgg_tiny', 'training'),
                     ('pspnet_repvgg_tiny', 'fused'),
                     ('pspnet_r18-d8 (mmseg)', 'fused')]
    for record in result['records']:
        assert record['params_m'] > 0 and record['gmacs'] > 0
        assert record['batch_size'] == 1 and record['peak_mem_mib'] is not None
        for name in ('raw', 'full'):
            lat = record['latency'][name]
            assert lat['p10_ms'] <= lat['median_ms'] <= lat['p90_ms']
            assert lat['fps'] == pytest.approx(1e3 / lat['median_ms'])
    train, fused = result['records'][:2]
    assert fused['params_m'] < train['params_m']
    assert fused['gmacs'] < train['gmacs']
    assert fused['vs_training']['logits_max_rel_diff'] < 1e-4
    assert fused['vs_training']['labels_agree_pct'] > 99.9
    assert fused['speedup_vs_training'] > 0
    assert [r['variant'] for r in result['fast_path']] == [
        'fp32+nchw+eager', 'fp32+cl+eager'] * 2
    for record in result['fast_path']:
        assert 'error' not in record
        assert record['labels_agree_pct'] > 99.9
        assert record['speedup_vs_training'] > 0
    assert plot.stat().st_size > 0
    text = md.read_text()
    assert text.count('<!-- benchmark:') == 2
    assert '| pspnet_repvgg_tiny | fused |' in text
    assert 'conv+BN folded' in text and '![' in text


def test_a_variant_that_changes_the_labels_fails_the_run(
        tiny_config, tmp_path, monkeypatch):
    """A fold that flips the labels (as a fold that lost its ReLU did on
    the GPU) is marked wrong against its plain variant, never the best nor
    plotted, and the run exits non-zero unless --allow-inexact."""
    pytest.importorskip('matplotlib')
    forward = FoldedPSPHead.forward
    monkeypatch.setattr(FoldedPSPHead, 'forward',
                        lambda self, inputs: -forward(self, inputs))
    out, plot, md = (tmp_path / n for n in ('r.json', 'r.png', 'b.md'))
    argv = [tiny_config, '--device', 'cpu', '--shape', *map(str, SHAPE),
            '--repeat', '1', '--warmup', '0', '--fast-path',
            'fp32+eager+cl+fold', 'fp32+eager+nchw', '--out', str(out),
            '--plot', str(plot), '--out-md', str(md)]
    with pytest.raises(UserError, match='(?s)change the labels.*'
                       'fp32\\+cl\\+eager\\+fold.*--allow-inexact'):
        load_tool('benchmark').main(argv)
    records = json.loads(out.read_text())['fast_path']
    fold, plain = records[:2]
    assert fold['variant'] == 'fp32+cl+eager+fold' and fold['wrong']
    # the plain counterpart was not asked for: measured for the check
    assert fold['plain_variant'] == 'fp32+cl+eager'
    assert fold['plain_agree_pct'] > 99 > 50 > fold['labels_agree_pct']
    assert plain['plain_variant'] == 'fp32+nchw+eager' and not plain['wrong']
    text = md.read_text()
    assert '**WRONG**' in text
    best = text.split('Best correct variant per model')[1]
    assert 'fp32+nchw+eager' in best and '+fold' not in best
    load_tool('benchmark').main(argv + ['--allow-inexact'])
    result = json.loads(out.read_text())
    assert fastest_correct_variants(result)[fold['model']]['variant'] == \
        'fp32+nchw+eager'


def test_markdown_section_is_replaced_not_appended(tmp_path):
    path = str(tmp_path / 'b.md')
    update_markdown(path, 'GPU run', 'first')
    update_markdown(path, 'CPU run', 'other')
    update_markdown(path, 'GPU run', 'second')
    with open(path) as f:
        text = f.read()
    assert 'first' not in text
    assert text.index('second') < text.index('other')


def test_imagenet_mode(tmp_path):
    out = tmp_path / 'i.json'
    load_tool('benchmark').main([
        '--imagenet', '--sweep', 'A0', '--device', 'cpu', '--shape', '32',
        '32', '--batch-size', '2', '--repeat', '1', '--warmup', '0',
        '--out', str(out)])
    records = json.loads(out.read_text())['records']
    assert [(r['model'], r['form']) for r in records] == [
        ('RepVGG-A0', 'training'), ('RepVGG-A0', 'fused'),
        ('ResNet-18', 'fused'), ('ResNet-50', 'fused'),
        ('ResNet-101', 'fused')]
    assert records[1]['vs_training']['logits_max_rel_diff'] < 1e-4
    # the paper's fused A0 classifier: 8.30 M parameters
    assert records[1]['params_m'] == pytest.approx(8.31, abs=0.01)


@pytest.mark.parametrize('variant', [
    'fp32+eager+nchw', 'fp32+eager+cl', 'fp32+eager+cl+fold',
    'fp32+eager+cl+relu', 'fp32+eager+nchw+fold+relu',
    'fp32+eager+cl+fold+relu'])
@pytest.mark.parametrize('shape', [SHAPE, (37, 71)])
def test_fast_path_fp32_equals_mmseg(tiny_model, variant, shape):
    """BGR uint8 frames -> labels, the preprocessing folded into the first
    conv, give MMSeg's labels (up to fp32 near-ties), for every combination
    of the exact transforms (fold + relu once lost the head's ReLU) and odd
    sizes."""
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    segmenter = optimize_for_inference(tiny_model, **parse_variant(variant))
    labels = segmenter(torch.from_numpy(images))
    assert labels.shape == (2, *shape) and labels.dtype == torch.uint8
    for image, label in zip(images, labels):
        expected = reference_labels(tiny_model, image)
        assert (label == expected).float().mean() > 0.999
    single = segmenter(torch.from_numpy(images[0]).float())
    assert torch.equal(single, labels[0])
    assert has_norms(tiny_model)  # the model itself is left unfused


def test_fast_path_fuses_rdrnets_conv_relu_pairs_exactly():
    """The fused RB's conv and its ReLU run as one call (ConvReLU), with
    MMSeg's labels; an RB without ReLU (branch ends) keeps none."""
    cfg = read_config(f'{REPO_ROOT}/configs/rdrnet-s-simple_citymini.py')
    model = build_segmentor(cfg, None, torch.device('cpu'), (2, 3, 64, 128))
    segmenter = optimize_for_inference(
        model, **parse_variant('fp32+eager+cl+relu'))
    blocks = [m for m in segmenter.model.modules() if isinstance(m, RB)]
    fused = [b for b in blocks if isinstance(b.reparam_3x3, ConvReLU)]
    assert len(blocks) - 4 == len(fused) > 20  # 4 branch ends: no ReLU
    image = np.random.default_rng(0).integers(0, 256, (64, 128, 3),
                                              dtype=np.uint8)
    labels = segmenter(torch.from_numpy(image))
    assert (labels == reference_labels(model, image)).float().mean() > 0.999


# the odd sizes are the point: mmseg notes that align_corners=True is
# exactest for sizes n*x+1
@pytest.mark.filterwarnings('ignore:When align_corners=True:UserWarning')
@pytest.mark.parametrize('align_corners', [False, True])
def test_folded_psp_head_is_exact(tiny_model, align_corners):
    fused = fuse_model(copy.deepcopy(tiny_model)).double()
    fused.decode_head.align_corners = align_corners
    fused.decode_head.psp_modules.align_corners = align_corners
    folded = copy.deepcopy(fused)
    folded.decode_head = FoldedPSPHead(folded.decode_head)
    for shape in [(1, 3, *SHAPE), (2, 3, 50, 90)]:
        x = torch.randn(shape, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(folded(x, mode='tensor'),
                                       fused(x, mode='tensor'))


def test_fast_path_refuses_bad_input(tiny_model):
    segmenter = optimize_for_inference(tiny_model, precision='fp32',
                                       cuda_graph=False)
    with pytest.raises(ValueError, match='H x W x 3'):
        segmenter(torch.zeros(1, 3, *SHAPE, dtype=torch.uint8))
    with pytest.raises(ValueError, match='cuda_graph needs .* CUDA'):
        FastSegmenter(tiny_model, 'fp32', cuda_graph=True, fuse_relu=False)
    with pytest.raises(ValueError, match='unknown flag'):
        parse_variant('fp16+turbo')


@pytest.mark.parametrize('size', [1, 2, 3, 6, (5, None)])
def test_separable_pool_equals_adaptive_pool(size):
    x = torch.randn(2, 8, 13, 29).to(memory_format=torch.channels_last)
    torch.testing.assert_close(MatMulAdaptiveAvgPool2d(size)(x),
                               nn.AdaptiveAvgPool2d(size)(x))


def test_conv_relu_pairs_cover_every_relu(tiny_model):
    model = fuse_model(copy.deepcopy(tiny_model))
    acts = {id(getattr(owner, act)) for owner, _, act in
            conv_relu_pairs(model)}
    relus = {id(m) for m in model.modules() if isinstance(m, nn.ReLU)}
    assert acts == relus
    assert sum(isinstance(m, RepVGGBlock) for m in model.modules()) < \
        len(acts)  # the PSP head's ConvModules too


def test_variant_names_are_canonical():
    assert variant_name(parse_variant('fp16')) == 'fp16+cl+graph'
    assert variant_name(parse_variant('bf16-autocast+relu+nchw')) == \
        'bf16-autocast+nchw+graph+relu'


def test_tool_renders_from_json(tiny_config, tmp_path):
    result = dict(mode='segmentation', title='t', command='c', notes=['n'],
                  env=dict(device='d', torch='t', mmseg='m', threads=1,
                           precision='fp32', date='x'),
                  records=[dict(model='m', family='repvgg', form='fused',
                                params_m=1, gmacs=1, fps=1, tflops=1,
                                peak_mem_mib=None,
                                latency=dict(raw=dict(
                                    median_ms=1, p10_ms=1, p90_ms=1, fps=1),
                                    full=dict(median_ms=1, p10_ms=1,
                                              p90_ms=1, fps=1)))])
    saved = tmp_path / 'r.json'
    saved.write_text(json.dumps(result))
    md = tmp_path / 'b.md'
    load_tool('benchmark').main(['--from-json', str(saved), '--out-md',
                                 str(md)])
    assert '| m | fused | 1.00 |' in md.read_text()


# ---- the real-time field: MMSeg's models by short name -------------------
@pytest.fixture(scope='module')
def pidnet_s():
    return build_segmentor(read_config(baseline_config('pidnet-s')), None,
                           torch.device('cpu'), (2, 3, 64, 128))


# MMSeg's own STDC configs: a detail head of 2 classes (binary on purpose)
# that it would rather see as 1
@pytest.mark.filterwarnings('ignore:For binary segmentation:UserWarning')
@pytest.mark.parametrize('name', list(BASELINES))
def test_every_short_name_builds(name):
    model = build_segmentor(read_config(baseline_config(name)), None,
                            torch.device('cpu'), (2, 3, 64, 128))
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 128), mode='tensor')
    assert logits.shape[:2] == (1, 19)
    assert published_miou(config_name(BASELINES[name]))[0] is not None


def test_unknown_short_name_is_refused():
    with pytest.raises(InvalidArgument, match='unknown baseline .*pidnet-s'):
        baseline_config('pidnet-xl')


def _relative_change(model, fused):
    """In float64: folding is exact, and fp32 rounding (which depends on
    the thread count, so on the machine's load) must not decide the test."""
    x = torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    model, fused = copy.deepcopy(model).double(), copy.deepcopy(fused).double()
    with torch.no_grad():
        expected, actual = model(x, mode='tensor'), fused(x, mode='tensor')
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def test_folding_keeps_a_bn_before_its_conv_exactly(pidnet_s):
    with pytest.raises(DeployError, match='norm layer comes before the conv'):
        fuse_model(copy.deepcopy(pidnet_s))  # tools/fuse.py stays strict
    fused = fuse_model(copy.deepcopy(pidnet_s), strict=False)
    assert _relative_change(pidnet_s, fused) < 1e-5
    left = [m for m in fused.modules() if isinstance(m, ConvModule)
            and m.with_norm]
    assert left and all(m.order.index('norm') < m.order.index('conv')
                        for m in left)
    assert len(unfolded_norms(fused)) < len(unfolded_norms(
        copy.deepcopy(pidnet_s).eval())) / 4  # the conv+BN pairs folded


def test_lenient_folding_of_ours_is_the_strict_one(tiny_model):
    lenient = fuse_model(copy.deepcopy(tiny_model), strict=False)
    strict = fuse_model(copy.deepcopy(tiny_model))
    assert not has_norms(lenient)
    assert _relative_change(tiny_model, lenient) < 1e-5
    assert _relative_change(strict, lenient) == 0


def test_fast_path_folds_the_input_into_every_conv_reading_it():
    """BiSeNet reads the image in two paths: both get the 1/std."""
    model = build_segmentor(read_config(baseline_config('bisenetv1')), None,
                            torch.device('cpu'), (2, 3, 64, 128))
    image = np.random.default_rng(0).integers(0, 256, (*SHAPE, 3),
                                              dtype=np.uint8)
    segmenter = optimize_for_inference(model,
                                       **parse_variant('fp32+eager+cl'))
    labels = segmenter(torch.from_numpy(image))
    assert (labels == reference_labels(model, image)).float().mean() > 0.999


def test_failing_variant_or_model_is_reported_and_the_rest_measured(
        tiny_config, tmp_path, monkeypatch):
    pytest.importorskip('matplotlib')
    from repvgg_seg.analysis import runs
    measure_forms = runs.measure_forms

    def fail_for_bisenet(name, *args):
        if name.startswith('bisenetv2'):
            raise RuntimeError('out of memory (simulated)')
        return measure_forms(name, *args)

    monkeypatch.setattr(runs, 'measure_forms', fail_for_bisenet)
    out, plot = tmp_path / 'r.json', tmp_path / 'r.png'
    load_tool('benchmark').main([
        tiny_config, '--device', 'cpu', '--shape', *map(str, SHAPE),
        '--repeat', '2', '--warmup', '1', '--baseline', 'bisenetv2',
        'pidnet-s', '--fast-path', 'fp32+eager+nchw', 'fp32+graph',
        '--out', str(out), '--plot', str(plot)])
    result = json.loads(out.read_text())
    records = {(r['model'], r.get('form')): r for r in result['records']}
    assert 'out of memory' in records['bisenetv2 (mmseg)', None]['error']
    pidnet = records['pidnet-s (mmseg)', 'fused']
    assert pidnet['norms_kept'] > 0 and pidnet['miou'] == 78.74
    # fp32 rounding of a deep random net (thread-count dependent); the
    # folding itself is checked exactly, in float64, above
    assert pidnet['vs_training']['logits_max_rel_diff'] < 1e-4
    fast = {(r['model'], r['variant']): r for r in result['fast_path']}
    assert 'cuda_graph needs' in fast['pidnet-s (mmseg)', 'fp32+graph'][
        'error']
    assert fast['pidnet-s (mmseg)', 'fp32+nchw+eager']['fps'] > 0
    assert fast['pspnet_repvgg_tiny', 'fp32+nchw+eager']['fps'] > 0
    assert plot.stat().st_size > 0
    assert (tmp_path / 'r_miou.png').stat().st_size > 0


def test_accuracy_plot_labels_do_not_overlap(tmp_path):
    pytest.importorskip('matplotlib')
    latency = dict(median_ms=10, p10_ms=9, p90_ms=12, fps=100)
    records = [dict(model=f'model-{i}', family='baseline', form='fused',
                    fps=100 + i, miou=78 + 0.05 * i, batch_size=1,
                    latency=dict(full=latency, raw=latency))
               for i in range(6)]
    fast = [dict(latency, model=f'model-{i}', variant='fp16+cl+graph',
                 fps=300 + 2 * i, labels_agree_pct=99.9) for i in range(6)]
    result = dict(mode='segmentation', title='t', records=records,
                  fast_path=fast, env=dict(device='d', torch='t'))
    path = tmp_path / 'miou.png'
    boxes = plot_accuracy(result, path)
    assert path.stat().st_size > 0 and len(boxes) == 6
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
