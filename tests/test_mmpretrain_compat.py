"""mmpretrain's own RepVGG tests, run against our RepVGG (a drop-in).

Ported from open-mmlab/mmpretrain
``tests/test_models/test_backbones/test_repvgg.py`` (test_repvgg_repvggblock,
test_repvgg_backbone, test_repvgg_load): the test logic is copied, split
into one function per check, with the imports pointed at our classes and
these deliberate changes, each marked ``# port:``
* ``add_ppf=True`` is refused on purpose (see ``RepVGG``): those checks
  assert the refusal, then run the rest without the PPF block;
* our ``out_indices`` default is all four stages (MMSeg's convention), so
  the one check relying on mmpretrain's ``(3, )`` passes it explicitly;
* upstream's ``torch.allclose(...)`` of train vs deploy outputs lacks an
  ``assert``; here it is asserted, relative to the largest value;
* the checkpoint goes to pytest's ``tmp_path`` through mmengine's
  ``save_checkpoint`` / ``load_checkpoint`` (mmcv.runner's are gone).
The last section checks what the port alone would not: mmpretrain weights of
a custom stem width load, and the errors say what is wrong.
"""
import pytest
import torch
from helpers import (FUSION_TOLERANCE, assert_features_close, build,
                     features, images, randomize_norms, relative_error)
from mmengine.runner import load_checkpoint, save_checkpoint
from torch import nn
from torch.nn.modules import GroupNorm
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_seg.models.backbones import (RepVGG, RepVGGArgumentError,
                                         RepVGGBlock, SELayer)
from repvgg_seg.models.checkpoints import (infer_arch, to_backbone_keys,
                                           to_layout)


def check_norm_state(modules, train_state):
    """Check if norm layer is in correct train state."""
    for mod in modules:
        if isinstance(mod, _BatchNorm):
            if mod.training != train_state:
                return False
    return True


def is_norm(modules):
    """Check if is one of the norms."""
    if isinstance(modules, (GroupNorm, _BatchNorm)):
        return True
    return False


def assert_block_fuses(block, x, out_shape):
    block.eval()
    x_out_not_deploy = block(x)
    assert x_out_not_deploy.shape == torch.Size(out_shape)
    block.switch_to_deploy()
    assert block.deploy is True
    x_out_deploy = block(x)
    assert x_out_deploy.shape == torch.Size(out_shape)
    assert torch.allclose(x_out_not_deploy, x_out_deploy, atol=1e-5, rtol=1e-4)


# ---- test_repvgg_repvggblock ---------------------------------------------


def test_block_in_channels_differ_stride_1():
    block = RepVGGBlock(5, 10, stride=1)
    block.eval()
    x = torch.randn(1, 5, 16, 16)
    block(x)
    assert block.branch_norm is None
    assert not hasattr(block, 'branch_reparam')
    assert hasattr(block, 'branch_1x1')
    assert hasattr(block, 'branch_3x3')
    assert hasattr(block, 'branch_norm')
    assert block.se_cfg is None
    assert_block_fuses(block, x, (1, 10, 16, 16))


def test_block_in_channels_equal_stride_1():
    block = RepVGGBlock(12, 12, stride=1)
    assert isinstance(block.branch_norm, nn.BatchNorm2d)
    assert not hasattr(block, 'branch_reparam')
    assert_block_fuses(block, torch.randn(1, 12, 8, 8), (1, 12, 8, 8))


def test_block_in_channels_equal_stride_2():
    block = RepVGGBlock(16, 16, stride=2)
    assert block.branch_norm is None
    assert_block_fuses(block, torch.randn(1, 16, 8, 8), (1, 16, 4, 4))


def test_block_padding_equal_dilation_2():
    block = RepVGGBlock(14, 14, stride=1, padding=2, dilation=2)
    assert isinstance(block.branch_norm, nn.BatchNorm2d)
    assert_block_fuses(block, torch.randn(1, 14, 16, 16), (1, 14, 16, 16))


def test_block_groups_2():
    block = RepVGGBlock(4, 4, stride=1, groups=2)
    assert_block_fuses(block, torch.randn(1, 4, 5, 6), (1, 4, 5, 6))


def test_block_with_se():
    se_cfg = dict(ratio=4, divisor=1)
    block = RepVGGBlock(18, 18, stride=1, se_cfg=se_cfg)
    block.train()
    x = torch.randn(1, 18, 5, 5)
    x_out_not_deploy = block(x)
    assert isinstance(block.se_layer, SELayer)
    assert x_out_not_deploy.shape == torch.Size((1, 18, 5, 5))


def test_block_checkpoint_forward():
    block = RepVGGBlock(24, 24, stride=1, with_cp=True)
    assert block.with_cp
    x = torch.randn(1, 24, 7, 7)
    x_out = block(x)
    assert x_out.shape == torch.Size((1, 24, 7, 7))


def test_block_deploy():
    block = RepVGGBlock(8, 8, stride=1, deploy=True)
    assert isinstance(block.branch_reparam, nn.Conv2d)
    assert not hasattr(block, 'branch_3x3')
    assert not hasattr(block, 'branch_1x1')
    assert not hasattr(block, 'branch_norm')
    x = torch.randn(1, 8, 16, 16)
    x_out = block(x)
    assert x_out.shape == torch.Size((1, 8, 16, 16))


# ---- test_repvgg_backbone: argument checks ------------------------------


@pytest.mark.parametrize('error, kwargs', [
    # arch must be str or dict
    (TypeError, dict(arch=[4, 6, 16, 1])),
    # arch must in arch_settings
    (AssertionError, dict(arch='A3')),
    # arch must have num_blocks and width_factor
    (KeyError, dict(arch=dict(num_blocks=[2, 4, 14, 1]))),
    # len(arch['num_blocks']) == len(arch['width_factor'])
    # == len(strides) == len(dilations)
    (AssertionError, dict(arch=dict(num_blocks=[2, 4, 14, 1],
                                    width_factor=[0.75, 0.75, 0.75]))),
    # len(strides) must equal to 4
    (AssertionError, dict(arch='A0', strides=(1, 1, 1))),
    # len(dilations) must equal to 4
    (AssertionError, dict(arch='A0', strides=(1, 1, 1, 1),
                          dilations=(1, 1, 2))),
    # max(out_indices) < len(arch['num_blocks'])
    (AssertionError, dict(arch='A0', out_indices=(5, ))),
    # max(arch['group_idx'].keys()) <= sum(arch['num_blocks'])
    (AssertionError, dict(arch=dict(num_blocks=[2, 4, 14, 1],
                                    width_factor=[0.75, 0.75, 0.75],
                                    group_idx={22: 2}))),
])
def test_backbone_refuses_bad_arguments(error, kwargs):
    with pytest.raises(error):
        RepVGG(**kwargs)


# ---- test_repvgg_backbone: structure and forward ------------------------


def test_backbone_norm_state():
    model = RepVGG('A0')
    model.train()
    assert check_norm_state(model.modules(), True)


def test_backbone_first_stage_frozen():
    frozen_stages = 1
    model = RepVGG('A0', frozen_stages=frozen_stages)
    model.train()
    for param in model.stem.parameters():
        assert param.requires_grad is False
    for i in range(0, frozen_stages):
        stage_name = model.stages[i]
        stage = model.__getattr__(stage_name)
        for mod in stage:
            if isinstance(mod, _BatchNorm):
                assert mod.training is False
        for param in stage.parameters():
            assert param.requires_grad is False


def test_backbone_norm_eval():
    model = RepVGG('A0', norm_eval=True)
    model.train()
    assert check_norm_state(model.modules(), False)


def test_backbone_forward_layer_3():
    model = RepVGG('A0', out_indices=(3, ))
    model.init_weights()
    model.eval()

    for m in model.modules():
        if is_norm(m):
            assert isinstance(m, _BatchNorm)

    imgs = torch.randn(1, 3, 32, 32)
    feat = model(imgs)
    assert isinstance(feat, tuple)
    assert len(feat) == 1
    assert isinstance(feat[0], torch.Tensor)
    assert feat[0].shape == torch.Size((1, 1280, 1, 1))


def test_backbone_custom_arch_stem_channels():
    cfg = dict(
        num_blocks=[3, 5, 7, 3],
        width_factor=[1, 1, 1, 1],
        group_layer_map=None,
        se_cfg=None,
        stem_channels=16)
    model = RepVGG(arch=cfg, out_indices=(3, ))
    model.eval()
    assert model.stem.out_channels == min(16, 64 * 1)

    imgs = torch.randn(1, 3, 32, 32)
    feat = model(imgs)
    assert isinstance(feat, tuple)
    assert len(feat) == 1
    assert isinstance(feat[0], torch.Tensor)
    assert feat[0].shape == torch.Size((1, 512, 1, 1))


@pytest.mark.parametrize('model_name, out_sizes', [
    ('A0', (48, 96, 192, 1280)),
    ('B1', (128, 256, 512, 2048)),
    ('B1g2', (128, 256, 512, 2048)),
])  # upstream's choose_models of its model_test_settings
def test_backbone_forward_and_deploy(model_name, out_sizes):
    model = RepVGG(model_name, out_indices=(0, 1, 2, 3))
    model.init_weights()
    model.eval()

    # Test Norm
    for m in model.modules():
        if is_norm(m):
            assert isinstance(m, _BatchNorm)

    imgs = torch.randn(1, 3, 32, 32)
    feat = model(imgs)
    assert feat[0].shape == torch.Size((1, out_sizes[0], 8, 8))
    assert feat[1].shape == torch.Size((1, out_sizes[1], 4, 4))
    assert feat[2].shape == torch.Size((1, out_sizes[2], 2, 2))
    assert feat[3].shape == torch.Size((1, out_sizes[3], 1, 1))

    # Test eval of "train" mode and "deploy" mode
    gap = nn.AdaptiveAvgPool2d(output_size=(1))
    fc = nn.Linear(out_sizes[3], 10)
    model.eval()
    feat = model(imgs)
    pred = fc(gap(feat[3]).flatten(1))
    model.switch_to_deploy()
    for m in model.modules():
        if isinstance(m, RepVGGBlock):
            assert m.deploy is True
    feat_deploy = model(imgs)
    pred_deploy = fc(gap(feat_deploy[3]).flatten(1))
    # port: asserted (upstream only computes torch.allclose), relative to
    # the largest value: the untrained features reach ~1e4
    assert_features_close(feat_deploy, feat)
    assert relative_error(pred_deploy, pred) < FUSION_TOLERANCE


def _assert_ppf_refused(*args, **kwargs):
    # port: add_ppf is refused on purpose, with a message that says why
    with pytest.raises(RepVGGArgumentError, match='add_ppf=True .* not '
                       'supported.*use add_ppf=False') as info:
        RepVGG(*args, add_ppf=True, **kwargs)
    assert isinstance(info.value, AssertionError)


def test_backbone_forward_with_add_ppf():
    _assert_ppf_refused('A0', out_indices=(3, ))
    model = RepVGG('A0', out_indices=(3, ))  # port: without the PPF block
    model.init_weights()
    model.train()

    for m in model.modules():
        if is_norm(m):
            assert isinstance(m, _BatchNorm)

    imgs = torch.randn(1, 3, 64, 64)
    feat = model(imgs)
    assert isinstance(feat, tuple)
    assert len(feat) == 1
    assert isinstance(feat[0], torch.Tensor)
    assert feat[0].shape == torch.Size((1, 1280, 2, 2))


def test_backbone_stem_channels_not_in_arch():
    arch = dict(
        num_blocks=[2, 4, 14, 1],
        width_factor=[0.75, 0.75, 0.75, 2.5],
        group_layer_map=None,
        se_cfg=None)
    _assert_ppf_refused(arch)
    # port: no PPF block; out_indices=(3, ) is mmpretrain's default
    model = RepVGG(arch, out_indices=(3, ))
    model.stem.in_channels = min(64, 64 * 0.75)
    model.init_weights()
    model.train()

    for m in model.modules():
        if is_norm(m):
            assert isinstance(m, _BatchNorm)

    imgs = torch.randn(1, 3, 64, 64)
    feat = model(imgs)
    assert isinstance(feat, tuple)
    assert len(feat) == 1
    assert isinstance(feat[0], torch.Tensor)
    assert feat[0].shape == torch.Size((1, 1280, 2, 2))


# ---- test_repvgg_load -----------------------------------------------------


def test_load_deploy_checkpoint(tmp_path):
    # Test output before and load from deploy checkpoint
    model = RepVGG('A1', out_indices=(0, 1, 2, 3))
    inputs = torch.randn((1, 3, 32, 32))
    ckpt_path = str(tmp_path / 'ckpt.pth')  # port: not the shared tmp dir
    model.switch_to_deploy()
    model.eval()
    outputs = model(inputs)

    model_deploy = RepVGG('A1', out_indices=(0, 1, 2, 3), deploy=True)
    save_checkpoint({'state_dict': model.state_dict()}, ckpt_path)
    load_checkpoint(model_deploy, ckpt_path, strict=True)

    outputs_load = model_deploy(inputs)
    for feat, feat_load in zip(outputs, outputs_load):
        assert torch.allclose(feat, feat_load)


# ---- beyond the port: what a user switching from mmpretrain relies on ----

CUSTOM_STEM = dict(num_blocks=[1, 2, 2, 1], width_factor=[1, 1, 1, 1],
                   stem_channels=16)


def test_mmpretrain_weights_of_a_custom_stem_width_load(tmp_path):
    source = randomize_norms(build(arch=CUSTOM_STEM, base_channels=32))
    assert source.stem.out_channels == 16
    path = str(tmp_path / 'mmpretrain.pth')
    torch.save({'state_dict': to_layout(source.state_dict(), 'mmpretrain')},
               path)
    loaded = build(arch=CUSTOM_STEM, base_channels=32,
                   init_cfg=dict(type='Pretrained', checkpoint=path))
    loaded.init_weights()
    x = images(1, 32)
    assert all(torch.equal(a, b)
               for a, b in zip(features(loaded, x), features(source, x)))


def test_stem_width_names_the_arch():
    yolox = build(arch='yolox-pai-small', base_channels=64, deploy=True)
    assert yolox.stem.out_channels == 32
    assert infer_arch(yolox.state_dict()) == 'yolox-pai-small'
    a0_blocks_narrow_stem = dict(num_blocks=(2, 4, 14, 1),
                                 width_factor=(0.75, 0.75, 0.75, 2.5),
                                 stem_channels=32)
    with torch.device('meta'):
        model = build(arch=a0_blocks_narrow_stem)
    assert infer_arch(model.state_dict()) == 'custom'


def test_se_layer_keys_are_mmpretrain_names_and_official_ones_load():
    model = build(arch=dict(num_blocks=[1, 1, 1, 1],
                            width_factor=[1, 1, 1, 1],
                            se_cfg=dict(ratio=16, divisor=1)),
                  base_channels=16)
    ours = model.state_dict()
    assert 'stage_1.0.se_layer.conv1.conv.weight' in ours
    mmpretrain = to_layout(ours, 'mmpretrain')
    assert 'backbone.stage_1.0.se_layer.conv2.conv.bias' in mmpretrain
    official = to_layout(ours, 'official')
    assert {'stage1.0.se.down.weight', 'stage0.se.up.bias'} <= set(official)
    for layout in (mmpretrain, official):
        backbone, others = to_backbone_keys(layout)
        assert others == [] and backbone.keys() == ours.keys()


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch=dict(num_blocks=[1, 1, 1, 1], width_factor=[1, 1, 1, 1],
                    group_layer_map={5: 2})),
     r'group_layer_map key 5 is not a layer: .* numbered 1\.\.4'),
    (dict(arch=dict(num_blocks=[1, 1, 1, 1], width_factor=[1, 1, 1, 1],
                    group_idx={2: 2})),
     r"unknown keys \['group_idx'\]; the keys are"),
    (dict(arch=dict(num_blocks=[1, 0, 1, 1], width_factor=[1, 1, 1, 1])),
     'num_blocks must be a non-empty list of positive ints'),
    (dict(arch=dict(num_blocks=[1, 1, 1, 1], width_factor=[1, 1, 1, 1],
                    se_cfg=dict(ratio=0))),
     r"se_cfg\['ratio'\] must be a positive int"),
    (dict(arch=dict(num_blocks=[1, 1, 1, 1], width_factor=[1, 1, 1, 1],
                    stem_channels=0)),
     'stem_channels must be a positive int'),
    (dict(arch='A0', conv_cfg=dict(type='DCNv2')), 'conv_cfg .* out of scope'),
    (dict(arch='A0', norm_cfg=dict(type='GN', num_groups=1)),
     'folds only BatchNorm'),
    (dict(arch='A0', num_dilated_layers=23), 'num_dilated_layers must lie'),
])
def test_arch_fields_are_checked_with_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        build(**kwargs)
    assert isinstance(info.value, AssertionError)  # as mmpretrain asserts


@pytest.mark.parametrize('kwargs, message', [
    (dict(padding=1, dilation=2), 'padding 1 must equal dilation 2'),
    (dict(padding_mode='reflect'), "padding_mode 'reflect' is out of scope"),
    (dict(groups=3), 'groups 3 must divide'),
])
def test_block_arguments_that_cannot_fuse_are_refused(kwargs, message):
    with pytest.raises(RepVGGArgumentError, match=message):
        RepVGGBlock(4, 4, **kwargs)
