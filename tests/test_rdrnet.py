"""RDRNet: exact fusion of every kind of branch (float64), the published
parameter counts and GFLOPs, checkpoints in the authors' key layout
(training and fused form) loading strictly and agreeing, and the mini
config trained, fused and tested through the tools."""
import copy
import os.path as osp
import re
import shutil
import subprocess
import sys

import av
import pytest
import torch
import torch.nn.functional as F
from helpers import (REPO_ROOT, citymini_root, relative_error,
                     torchrun_train)
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.datasets import CityscapesDataset
from repvgg_seg.analysis.candidates import (BASELINES, baseline_config,
                                            config_name, family,
                                            has_training_form)
from repvgg_seg.analysis.complexity import count_complexity
from repvgg_seg.analysis.published import published_miou
from repvgg_seg.apis import (convert_checkpoint, extract_backbone,
                             fuse_checkpoint, inference_model, init_model)
from repvgg_seg.deploy import deploy_config, fuse_model
from repvgg_seg.models import RDRNet, RepVGGBlock, build_model
from repvgg_seg.models.backbones import RB, Block1x1, RepParallel
from repvgg_seg.models.backbones.reparam import ConvGeometry
from repvgg_seg.models.checkpoints import CheckpointMismatch
from repvgg_seg.utils.errors import InvalidArgument

CONFIGS = {name: osp.join(REPO_ROOT, 'configs',
                          f'{name}_2xb6-120k_cityscapes-1024x1024.py')
           for name in ('rdrnet-s-simple', 'rdrnet-s', 'rdrnet-m',
                        'rdrnet-l')}
S_SIMPLE = CONFIGS['rdrnet-s-simple']
MINI = osp.join(REPO_ROOT, 'configs', 'rdrnet-s-simple_citymini.py')
S_BLOCKS = [4, 3, [5, 4], [5, 4], [1, 1]]
#: Fused and training-form outputs agree to fp32 rounding.
TOLERANCE = 1e-4


def calibrated(model, *inputs, seed=0):
    """Random BN affine parameters, running statistics measured on
    ``inputs`` (as training leaves them): fusion folds non-trivial
    statistics and activations keep a trained network's scale."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    with torch.no_grad():
        for m in norms:
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
            m.reset_running_stats()
            m.momentum = None  # the plain average of the batches
        model.train()
        for x in inputs:
            model(x)
    return model.eval()


def images(n=2, height=64, width=128, seed=0, dtype=torch.float64):
    """Per-image brightness and contrast vary, so a BN after a global
    pooling measures a real variance."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, height, width, generator=gen) *
            (0.5 + torch.rand(n, 3, 1, 1, generator=gen)) +
            torch.randn(n, 3, 1, 1, generator=gen)).to(dtype)


@torch.no_grad()
def fusion_difference(module, x):
    """Max |eval output before - after switch_to_deploy|, in the dtype of
    ``x`` (float64: fusion itself, without fp32 rounding)."""
    expected = module.eval()(x)
    module.switch_to_deploy()
    assert not [m for m in module.modules()
                if isinstance(m, _BatchNorm) and m is not
                getattr(module, 'norm', None)]  # only RepParallel's stays
    return (module(x) - expected).abs().max().item()


# ---- exact fusion of every kind of branch --------------------------------
@pytest.mark.parametrize('in_channels, out_channels, stride, act', [
    (8, 8, 1, True),     # 3x3 + 1x1 chain + identity
    (8, 8, 1, False),    # the last RB of a branch stage: no ReLU
    (8, 16, 1, True),    # no identity: the channels change
    (8, 16, 2, True),    # stride 2, odd input size
    (3, 8, 2, True),     # the stem's first block
])
def test_rb_fuses_exactly(in_channels, out_channels, stride, act):
    torch.manual_seed(0)
    block = RB(in_channels, out_channels, stride, act=act).double()
    x = torch.randn(2, in_channels, 11, 13, dtype=torch.float64)
    calibrated(block, x)
    assert (block.path_residual is not None) == (
        in_channels == out_channels and stride == 1)
    assert fusion_difference(block, x) < 1e-12
    assert block(x).shape == (2, out_channels, -(-11 // stride),
                              -(-13 // stride))
    assert set(block.state_dict()) == {'reparam_3x3.weight',
                                       'reparam_3x3.bias'}


def test_block1x1_is_one_1x1_conv():
    torch.manual_seed(0)
    chain = Block1x1(6, 10, stride=2).double()
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64)
    calibrated(chain, x)
    kernel, bias = chain.equivalent_kernel(ConvGeometry(6, 10, 1, 2, 0))
    with torch.no_grad():
        expected = chain(x)
        actual = F.conv2d(x, kernel, bias, stride=2)
    assert (actual - expected).abs().max().item() < 1e-12


def test_rppm_refinement_fuses_exactly():
    torch.manual_seed(0)
    block = RepParallel(16, 16, groups=4).double()
    x = torch.randn(2, 16, 6, 7, dtype=torch.float64)
    calibrated(block, x)
    assert fusion_difference(block, x) < 1e-12
    assert block.reparam_parallel.weight.shape == (16, 4, 3, 3)
    assert set(block.state_dict()) - {'reparam_parallel.weight',
                                      'reparam_parallel.bias'} == {
        f'norm.{name}' for name in ('weight', 'bias', 'running_mean',
                                    'running_var', 'num_batches_tracked')}


@pytest.mark.parametrize('kwargs', [dict(), dict(stride=2),
                                    dict(groups=4, dilation=2)])
def test_repvgg_block_on_the_shared_machinery_still_exact(kwargs):
    torch.manual_seed(0)
    block = RepVGGBlock(8, 8, **kwargs).double()
    x = torch.randn(2, 8, 10, 10, dtype=torch.float64)
    calibrated(block, x)
    names = set(block.state_dict())
    assert {'branch_3x3.conv.weight', 'branch_1x1.conv.weight'} <= names
    assert fusion_difference(block, x) < 1e-12
    assert set(block.state_dict()) == {'branch_reparam.weight',
                                       'branch_reparam.bias'}


def test_whole_backbone_fuses_exactly_and_deploy_builds_it():
    torch.manual_seed(0)
    backbone = RDRNet().double()
    calibrated(backbone, images(4, seed=1))
    x = images()
    with torch.no_grad():
        expected = backbone(x)
    fused = copy.deepcopy(backbone)
    fused.switch_to_deploy()
    with torch.no_grad():
        actual = fused(x)
    assert expected.shape == (2, 128, 8, 16)
    assert (actual - expected).abs().max().item() < 1e-12 * \
        expected.abs().max().item()
    deployed = RDRNet(deploy=True)
    deployed.load_state_dict(fused.state_dict())  # strict: same structure


def test_output_size_rounds_up_and_training_returns_the_aux_feature():
    backbone = RDRNet(channels=8, ppm_channels=8,
                      num_blocks_per_stage=[0, 0, [1, 1], [1, 1], [1, 1]])
    aux, out = backbone.train()(torch.randn(2, 3, 65, 130))
    assert out.shape == (2, 32, 9, 17)  # ceil(65 / 8), ceil(130 / 8)
    assert aux.shape == (2, 16, 9, 17)  # 2C, after the first fusion
    with torch.no_grad():
        assert backbone.eval()(torch.randn(1, 3, 65, 130)).shape == \
            (1, 32, 9, 17)


@pytest.mark.parametrize('blocks', [[4, 3, [0, 4], [5, 4], [1, 1]],
                                    [4, 3, [5, 4], [5, 4]], 'S'])
def test_block_counts_that_build_no_network_are_refused(blocks):
    with pytest.raises(InvalidArgument, match='num_blocks_per_stage'):
        RDRNet(num_blocks_per_stage=blocks)


# ---- the published sizes -------------------------------------------------
def _meta_model(config, deploy=False):
    cfg = Config.fromfile(config)
    cfg.model.backbone.deploy = deploy
    with torch.device('meta'):
        return build_model(cfg)


def _millions(model):
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 3)


@pytest.mark.parametrize('name, fused_m', [
    ('rdrnet-s-simple', 7.164), ('rdrnet-s', 7.277), ('rdrnet-m', 26.021),
    ('rdrnet-l', 36.954)])
def test_fused_params_with_the_aux_head_match_the_official_model(name,
                                                                  fused_m):
    assert _millions(_meta_model(CONFIGS[name], deploy=True)) == fused_m


def test_training_form_params_of_s_simple():
    assert _millions(_meta_model(S_SIMPLE)) == 8.833


def test_fused_s_simple_gflops_at_1024x2048():
    cfg = Config.fromfile(S_SIMPLE)
    cfg.model.backbone.deploy = True
    counts = count_complexity(build_model(cfg), torch.zeros(1, 3, 1024, 2048))
    assert round(counts['macs'] / 1e9, 1) == 41.0


@pytest.mark.parametrize('name, miou', [
    ('rdrnet-s-simple', 76.7), ('rdrnet-s', 76.8), ('rdrnet-m', 78.8),
    ('rdrnet-l', 79.6)])
def test_short_names_build_our_configs_with_the_published_miou(name, miou):
    path = baseline_config(name)
    assert path == CONFIGS[name] == BASELINES[name]
    assert published_miou(config_name(path)) == (miou, 'RDRNet README')
    assert family(Config.fromfile(path)) == 'rdrnet'


def test_the_benchmark_times_the_training_form_until_fused():
    model = RDRNet(channels=8, ppm_channels=8,
                   num_blocks_per_stage=[0, 0, [1, 1], [1, 1], [1, 1]])
    assert has_training_form(model)
    model.switch_to_deploy()
    assert not has_training_form(model)


# ---- the authors' checkpoints --------------------------------------------
BN_ENTRIES = ('weight', 'bias', 'running_mean', 'running_var',
              'num_batches_tracked')


def _bn(layout, name, channels):
    for entry in BN_ENTRIES:
        layout[f'{name}.{entry}'] = () if entry == 'num_batches_tracked' \
            else (channels, )


def _conv_bn(layout, name, cin, cout, kernel):
    layout[f'{name}.conv.weight'] = (cout, cin, kernel, kernel)
    _bn(layout, f'{name}.bn', cout)


def _bn_conv(layout, name, cin, cout, kernel=1):
    """A pre-activation ConvModule: BN(cin)-ReLU-conv."""
    _bn(layout, f'{name}.bn', cin)
    layout[f'{name}.conv.weight'] = (cout, cin, kernel, kernel)


def _rb(layout, name, cin, cout, stride, fused):
    if fused:
        layout[f'{name}.reparam_3x3.weight'] = (cout, cin, 3, 3)
        layout[f'{name}.reparam_3x3.bias'] = (cout, )
        return
    _conv_bn(layout, f'{name}.path_3x3', cin, cout, 3)
    for i, channels in ((1, cin), (2, cout)):
        _conv_bn(layout, f'{name}.path_1x1.conv{i}', channels, cout, 1)
        layout[f'{name}.path_1x1.conv{i}.conv.bias'] = (cout, )
    if cin == cout and stride == 1:
        _bn(layout, f'{name}.path_residual', cin)


def _bottleneck(layout, name, cin, planes, first):
    _conv_bn(layout, f'{name}.conv1', cin, planes, 1)
    _conv_bn(layout, f'{name}.conv2', planes, planes, 3)
    _conv_bn(layout, f'{name}.conv3', planes, 2 * planes, 1)
    if first:
        layout[f'{name}.downsample.0.weight'] = (2 * planes, cin, 1, 1)
        _bn(layout, f'{name}.downsample.1', 2 * planes)


def official_layout(channels=32, blocks=S_BLOCKS, head=64, fused=False,
                    ppm=128, classes=19):
    """``key -> shape`` of a whole RDRNet segmentor as the authors' code
    saves it, written from the architecture's description (block table,
    RPPM, DDRHead), not from our modules."""
    c, (n2, n3, (n4s, n4d), (n5s, n5d), (n6s, n6d)) = channels, blocks
    layout, bb = {}, 'backbone.'
    stem = ([(3, c, 2), (c, c, 2)] + [(c, c, 1)] * n2 + [(c, 2 * c, 2)] +
            [(2 * c, 2 * c, 1)] * n3)
    stages = {'stem': stem,
              'semantic_branch_layers.0': [(2 * c, 4 * c, 2)] +
              [(4 * c, 4 * c, 1)] * n4s,
              'semantic_branch_layers.1': [(4 * c, 8 * c, 2)] +
              [(8 * c, 8 * c, 1)] * n5s,
              'detail_branch_layers.0': [(2 * c, 2 * c, 1)] * n4d,
              'detail_branch_layers.1': [(2 * c, 2 * c, 1)] * n5d}
    for stage, rbs in stages.items():
        for i, (cin, cout, stride) in enumerate(rbs):
            _rb(layout, f'{bb}{stage}.{i}', cin, cout, stride, fused)
    for i in range(n6s):
        _bottleneck(layout, f'{bb}semantic_branch_layers.2.0.{i}',
                    8 * c if i == 0 else 16 * c, 8 * c, i == 0)
    for i in range(n6d):
        _bottleneck(layout, f'{bb}detail_branch_layers.2.{i}',
                    2 * c if i == 0 else 4 * c, 2 * c, i == 0)
    for name, cin, cout, kernel in (
            ('compression_1', 4 * c, 2 * c, 1), ('down_1', 2 * c, 4 * c, 3),
            ('compression_2', 8 * c, 2 * c, 1), ('down_2.0', 2 * c, 4 * c, 3),
            ('down_2.1', 4 * c, 8 * c, 3)):
        _conv_bn(layout, bb + name, cin, cout, kernel)
    spp = f'{bb}spp.'
    _bn_conv(layout, f'{spp}scales.0', 16 * c, ppm)
    for i in range(1, 5):
        _bn_conv(layout, f'{spp}scales.{i}.1', 16 * c, ppm)
    _bn(layout, f'{spp}processes.norm', 4 * ppm)
    if fused:
        layout[f'{spp}processes.reparam_parallel.weight'] = (4 * ppm, ppm, 3,
                                                            3)
        layout[f'{spp}processes.reparam_parallel.bias'] = (4 * ppm, )
    else:
        for i in (1, 2):  # groups 4: ppm input channels per group
            _conv_bn(layout, f'{spp}processes.parallel{i}', ppm, 4 * ppm, 3)
    _bn_conv(layout, f'{spp}compression', 5 * ppm, 4 * c)
    _bn_conv(layout, f'{spp}shortcut', 16 * c, 4 * c)
    for prefix, cin in (('head', 4 * c), ('aux_head', 2 * c)):
        _bn_conv(layout, f'decode_head.{prefix}.0', cin, head, 3)
        _bn(layout, f'decode_head.{prefix}.1', head)
    for name in ('conv_seg', 'aux_cls_seg'):
        layout[f'decode_head.{name}.weight'] = (classes, head, 1, 1)
        layout[f'decode_head.{name}.bias'] = (classes, )
    return layout


def random_state(layout, seed=0):
    """Values for ``layout`` that a trained network could hold: conv
    weights at He scale, BN statistics near what such convs produce."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        entry = key.rsplit('.', 1)[1]
        if entry == 'num_batches_tracked':
            state[key] = torch.tensor(1000)
        elif entry == 'running_var':
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif entry == 'weight' and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) / fan_in**0.5
        elif entry == 'weight':
            state[key] = torch.rand(shape, generator=gen) * 0.5 + 0.5
        else:  # running_mean, biases
            state[key] = torch.randn(shape, generator=gen) * 0.1
    return state


#: The model settings the authors' Runner saves in ``meta['cfg']``.
OFFICIAL_MODEL_CFG = """
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', size=(1024, 1024),
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
    backbone=dict(type='RDRNet', in_channels=3, channels=32,
        ppm_channels=128, num_blocks_per_stage=[4, 3, [5, 4], [5, 4], [1, 1]],
        norm_cfg=dict(type='BN', requires_grad=True, momentum=0.03,
                      eps=0.001),
        align_corners=False),
    decode_head=dict(type='DDRHead', in_channels=128, channels=64,
        dropout_ratio=0.0, num_classes=19, align_corners=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        loss_decode=[dict(type='OhemCrossEntropy', thres=0.9,
                          min_kept=131072, loss_weight=1.0),
                     dict(type='OhemCrossEntropy', thres=0.9,
                          min_kept=131072, loss_weight=0.4)]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
"""


@pytest.fixture(scope='module')
def official_files(tmp_path_factory):
    """The authors' layout in both forms, saved as MMEngine checkpoints
    (``state_dict``, no ``dataset_meta``) with the model config their Runner
    records (training form, ``deploy`` unset, also in the file saved after
    ``switch_to_deploy``)."""
    folder = tmp_path_factory.mktemp('official')
    files = {}
    for form, fused in (('train', False), ('fused', True)):
        state = random_state(official_layout(fused=fused), seed=int(fused))
        path = str(folder / f'rdrnet-s-simple_{form}.pth')
        torch.save(dict(meta=dict(cfg=OFFICIAL_MODEL_CFG), state_dict=state),
                   path)
        files[form] = (path, state)
    return files


@pytest.mark.parametrize('fused, entries', [(False, 888), (True, 213)])
def test_our_model_has_the_authors_keys_and_shapes(fused, entries):
    layout = official_layout(fused=fused)
    assert len(layout) == entries
    ours = {k: tuple(v.shape) for k, v in
            _meta_model(S_SIMPLE, deploy=fused).state_dict().items()}
    assert ours == layout


def test_the_reference_layout_has_the_published_shapes():
    layout = official_layout()
    bb = 'backbone.'
    assert layout[f'{bb}stem.0.path_3x3.conv.weight'] == (32, 3, 3, 3)
    assert layout[f'{bb}stem.0.path_1x1.conv1.conv.weight'] == (32, 3, 1, 1)
    assert layout[f'{bb}spp.scales.0.bn.weight'] == (512, )
    assert layout[f'{bb}spp.processes.parallel1.conv.weight'] == (512, 128,
                                                                  3, 3)
    assert layout[f'{bb}spp.compression.conv.weight'] == (128, 640, 1, 1)
    assert layout[f'{bb}semantic_branch_layers.2.0.0.conv3.conv.weight'] == (
        512, 256, 1, 1)
    assert layout['decode_head.head.0.bn.weight'] == (128, )
    assert layout['decode_head.head.0.conv.weight'] == (64, 128, 3, 3)


@pytest.mark.parametrize('form', ['train', 'fused'])
def test_the_authors_checkpoints_load_strictly(official_files, form):
    """Every tensor consumed, none missing (the loader refuses either), the
    values as saved; the fused one builds the fused network by itself;
    Cityscapes classes without a dataset_meta."""
    path, state = official_files[form]
    model = init_model(S_SIMPLE, path)
    assert model.backbone.deploy == (form == 'fused')
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert tuple(model.dataset_meta['classes']) == \
        CityscapesDataset.METAINFO['classes']


def test_a_fused_checkpoint_loads_into_the_deploy_config(official_files,
                                                         tmp_path):
    path, state = official_files['fused']
    deploy_cfg = deploy_config(Config.fromfile(S_SIMPLE))
    assert deploy_cfg.model.backbone.deploy
    assert deploy_cfg.model.decode_head.norm_cfg is not None  # BN first
    config = tmp_path / 'deploy.py'
    deploy_cfg.dump(str(config))
    model = init_model(str(config), path)
    assert all(torch.equal(model.state_dict()[k], v)
               for k, v in state.items())


def test_training_form_fused_by_us_equals_its_fused_checkpoint(
        official_files, tmp_path):
    """(b): loaded in training form and fused on load, and fused by
    tools/fuse.py's function into the authors' fused layout and loaded
    as such: the same predictions as the training form."""
    path, _ = official_files['train']
    report = fuse_checkpoint(S_SIMPLE, path, str(tmp_path / 'fused.pth'))
    saved = torch.load(report['out_checkpoint'], weights_only=True)
    layout = official_layout(fused=True)
    assert {k: tuple(v.shape) for k, v in saved['state_dict'].items()} == \
        layout
    assert saved['meta']['arch'].startswith('RDRNet(channels=32, ')
    assert Config.fromfile(report['out_config']).model.backbone.deploy

    x = images(1, 128, 256, dtype=torch.float32)
    with torch.no_grad():
        expected = init_model(S_SIMPLE, path)(x, mode='tensor')
        for model in (init_model(S_SIMPLE, path, fuse=True),
                      init_model(report['out_config'],
                                     report['out_checkpoint']),
                      init_model(S_SIMPLE, report['out_checkpoint'])):
            assert model.backbone.deploy
            assert relative_error(model(x, mode='tensor'), expected) < \
                TOLERANCE


def test_strict_fusion_keeps_the_authors_fused_form_and_lenient_folds_more(
        official_files):
    path, _ = official_files['train']
    model = init_model(S_SIMPLE, path)
    strict = fuse_model(copy.deepcopy(model))
    lenient = fuse_model(copy.deepcopy(model), strict=False)
    assert len(strict.state_dict()) == 213
    assert len(lenient.state_dict()) < 213  # compression, down, Bottleneck
    x = images(1, 64, 128, dtype=torch.float32)
    with torch.no_grad():
        assert relative_error(lenient(x, mode='tensor'),
                              strict(x, mode='tensor')) < TOLERANCE


def test_a_checkpoint_of_another_variant_is_refused(official_files):
    path, _ = official_files['train']
    with pytest.raises(CheckpointMismatch,
                       match=r'holds RDRNet\(channels=32.*builds '
                       r'RDRNet\(channels=64'):
        init_model(CONFIGS['rdrnet-m'], path)


def test_the_repvgg_converters_refuse_rdrnet_weights(official_files,
                                                     tmp_path):
    path, _ = official_files['train']
    for convert in (convert_checkpoint, extract_backbone):
        with pytest.raises(CheckpointMismatch, match='need no conversion'):
            convert(path, str(tmp_path / 'out.pth'))


# ---- train, fuse and test through the tools ------------------------------
def test_mini_config_trains_fuses_and_tests(tmp_path_factory, tmp_path):
    root = citymini_root(tmp_path_factory, 4, 2, height=128, width=256)
    roots = [f'{split}_dataloader.dataset.data_root={root}'
             for split in ('train', 'val', 'test')]
    work_dir = tmp_path / 'work'

    def tool(*args):
        result = subprocess.run(
            [sys.executable, *map(str, args)], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    small = ['train_dataloader.batch_size=2',
             'train_dataloader.dataset.pipeline.3.crop_size=(64,128)',
             'model.data_preprocessor.size=(64,128)',
             'default_hooks.checkpoint.interval=2',
             'custom_hooks.0.enabled=False', *roots]
    tool('tools/train.py', MINI, '--work-dir', work_dir, '--cfg-options',
         'train_cfg.max_iters=2', *small)
    # resumed from iteration 2 to 4, as MMSeg's --resume does
    tool('tools/train.py', MINI, '--work-dir', work_dir, '--resume',
         '--cfg-options', 'train_cfg.max_iters=4', *small)
    trained = work_dir / 'iter_4.pth'
    checkpoint = torch.load(trained, weights_only=True)
    assert checkpoint['meta']['iter'] == 4
    assert 'backbone.spp.processes.parallel2.conv.weight' in \
        checkpoint['state_dict']

    fused = tmp_path / 'fused.pth'
    printed = tool('tools/fuse.py', MINI, trained, fused)
    assert 'Fused RDRNet(channels=32, ppm_channels=128, ' in printed
    assert float(re.search(r'relative ([-+.e\d]+)', printed).group(1)) < \
        TOLERANCE
    out = tool('tools/test.py', tmp_path / 'fused.py', fused,
               '--work-dir', tmp_path / 'test', '--cfg-options',
               f'test_dataloader.dataset.data_root={root}')
    assert re.findall(r'mIoU: ([\d.]+)', out)

    image = sorted((root / 'leftImg8bit' / 'val').glob('*/*.png'))[0]
    expected = inference_model(init_model(MINI, str(trained)),
                                   str(image))
    actual = inference_model(init_model(str(tmp_path / 'fused.py'),
                                                str(fused)), str(image))
    assert relative_error(actual.seg_logits.data,
                          expected.seg_logits.data) < TOLERANCE

    # the image and video demos on the trained and the fused checkpoint
    tool('demo/image_demo.py', image, MINI, trained, '--out-dir',
         tmp_path / 'demo')
    assert (tmp_path / 'demo' / f'{image.stem}.png').is_file()
    frames = tmp_path / 'frames'
    frames.mkdir()
    scenes = sorted(image.parent.glob('*.png'))
    for i, path in enumerate(scenes):
        shutil.copy(path, frames / f'{i:03d}.png')
    tool('tools/video_demo.py', frames, tmp_path / 'fused.py', fused,
         '--out', tmp_path / 'overlay.mp4', '--no-progress')
    video = av.open(str(tmp_path / 'overlay.mp4'))
    assert sum(1 for _ in video.decode(video=0)) == len(scenes) > 1


def test_mini_config_trains_with_two_processes(tmp_path_factory, tmp_path):
    """torchrun: DDP on the CPU, 2 processes, 2 iterations."""
    root = citymini_root(tmp_path_factory, 4, 2, height=128, width=256)
    result = torchrun_train(
        MINI, tmp_path, '--cfg-options', 'train_cfg.max_iters=2',
        'train_dataloader.batch_size=2', 'custom_hooks.0.enabled=False',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,128)',
        'model.data_preprocessor.size=(64,128)', *(
            f'{split}_dataloader.dataset.data_root={root}'
            for split in ('train', 'val', 'test')))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert torch.load(tmp_path / 'iter_2.pth',
                      weights_only=True)['meta']['iter'] == 2
