"""tools/benchmark.py and the fast inference path, on the CPU at tiny sizes."""
import copy
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from helpers import REPO_ROOT, load_tool
from repvgg_seg.analysis.candidates import build_segmentor, has_norms
from repvgg_seg.analysis.measure import reference_labels
from repvgg_seg.analysis.report import update_markdown
from repvgg_seg.analysis.variants import parse_variant, variant_name
from repvgg_seg.deploy.fast_path import (FastSegmenter, FoldedPSPHead,
                                         conv_relu_pairs,
                                         optimize_for_inference)
from repvgg_seg.deploy.ops import MatMulAdaptiveAvgPool2d
from repvgg_seg.utils.config import read_config
from repvgg_seg.deploy.fuse import fuse_model
from repvgg_seg.models import RepVGGBlock

#: A RepVGG PSPNet small enough to time in a test (one block per stage).
TINY_CONFIG = f"""
_base_ = ['{REPO_ROOT}/configs/pspnet_repvgg_a0-fast.py']
model = dict(
    backbone=dict(arch=dict(_delete_=True, num_blocks=(1, 1, 1, 1),
                            width_factor=(0.25, 0.25, 0.25, 0.5),
                            group_layer_map={{2: 2}})),
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


@pytest.mark.parametrize('variant', ['fp32+eager+nchw', 'fp32+eager+cl',
                                     'fp32+eager+cl+fold'])
def test_fast_path_fp32_equals_mmseg(tiny_model, variant):
    """BGR uint8 frames -> labels, the preprocessing folded into the first
    conv, give MMSeg's labels (up to fp32 near-ties)."""
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, (2, *SHAPE, 3), dtype=np.uint8)
    segmenter = optimize_for_inference(tiny_model, **parse_variant(variant))
    labels = segmenter(torch.from_numpy(images))
    assert labels.shape == (2, *SHAPE) and labels.dtype == torch.uint8
    for image, label in zip(images, labels):
        expected = reference_labels(tiny_model, image)
        assert (label == expected).float().mean() > 0.999
    single = segmenter(torch.from_numpy(images[0]).float())
    assert torch.equal(single, labels[0])
    assert has_norms(tiny_model)  # the model itself is left unfused


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
    for gpu_only in ('cuda_graph', 'fuse_relu'):
        options = {'cuda_graph': False, 'fuse_relu': False, gpu_only: True}
        with pytest.raises(ValueError, match=f'{gpu_only} needs .* CUDA'):
            FastSegmenter(tiny_model, 'fp32', **options)
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
