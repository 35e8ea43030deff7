"""Loading official, mmpretrain and repvgg-seg checkpoints; converting them."""
import copy
import logging
import os
import re
import subprocess
import sys

import pytest
import torch
from helpers import (REPO_ROOT, assert_features_close, build, features,
                     images, load_tool, randomize_norms)
from mmengine.logging import MMLogger

from repvgg_seg.models.checkpoints import (CheckpointMismatch,
                                          to_backbone_keys, to_layout)
from repvgg_seg.models.convert import ConversionError, convert_checkpoint

ARCH = 'A0'  # the smallest real arch: loading checks the arch by its shapes
HEADS = {  # classifier heads that checkpoints of each layout carry
    'official': ('linear.weight', 'linear.bias'),
    'mmpretrain': ('head.fc.weight', 'head.fc.bias'),
    'repvgg-seg': (),
}
#: id -> (layout, form, wrapped under, 'module.' prefix)
CHECKPOINTS = {
    'official-train': ('official', 'train', None, False),
    'official-deploy': ('official', 'deploy', None, False),
    'official-train-in-state_dict': ('official', 'train', 'state_dict', False),
    'official-train-in-model-ddp': ('official', 'train', 'model', True),
    'official-deploy-in-state_dict-ddp': ('official', 'deploy', 'state_dict',
                                          True),
    'mmpretrain-train': ('mmpretrain', 'train', 'state_dict', False),
    'mmpretrain-deploy': ('mmpretrain', 'deploy', 'state_dict', False),
    'repvgg-seg-train': ('repvgg-seg', 'train', None, False),
}
TRAIN_CHECKPOINTS = [k for k, v in CHECKPOINTS.items() if v[1] == 'train']
DEPLOY_CHECKPOINTS = [k for k, v in CHECKPOINTS.items() if v[1] == 'deploy']


@pytest.fixture(scope='module')
def source():
    """A randomly initialised model, its fused twin, and their features."""
    torch.manual_seed(0)
    model = randomize_norms(build(arch=ARCH))
    fused = copy.deepcopy(model).eval()
    fused.switch_to_deploy()
    x = images(1, 64)
    return dict(train=model.eval(), deploy=fused, x=x,
                train_features=features(model, x),
                deploy_features=features(fused, x))


def checkpoint_in_layout(model, layout, wrap=None, module_prefix=False):
    state = to_layout(model.state_dict(), layout)
    shapes = dict(weight=(1000, model.out_channels[-1]), bias=(1000, ))
    for key in HEADS[layout]:
        state[key] = torch.randn(shapes[key.rsplit('.', 1)[1]])
    if module_prefix:
        state = {f'module.{k}': v for k, v in state.items()}
    return {wrap: state} if wrap else state


@pytest.fixture(scope='module')
def checkpoint_files(source, tmp_path_factory):
    directory = tmp_path_factory.mktemp('checkpoints')
    files = {}
    for name, (layout, form, wrap, module_prefix) in CHECKPOINTS.items():
        files[name] = str(directory / f'{name}.pth')
        torch.save(checkpoint_in_layout(source[form], layout, wrap,
                                        module_prefix), files[name])
    return files


def pretrained(path, **kwargs):
    model = build(arch=kwargs.pop('arch', ARCH),
                  init_cfg=dict(type='Pretrained', checkpoint=path), **kwargs)
    model.init_weights()
    return model


@pytest.fixture
def warnings_logged():
    """WARNING records of the current MMLogger (it does not propagate to
    the root logger, so caplog cannot see them)."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_layouts_have_the_exact_published_key_names(source):
    official = checkpoint_in_layout(source['train'], 'official')
    official_deploy = checkpoint_in_layout(source['deploy'], 'official')
    mmpretrain = checkpoint_in_layout(source['train'], 'mmpretrain')
    assert {'stage0.rbr_dense.conv.weight', 'stage1.0.rbr_1x1.bn.running_var',
            'stage2.3.rbr_identity.weight', 'stage4.0.rbr_dense.bn.bias',
            'linear.weight'} <= set(official)
    assert {'stage0.rbr_reparam.weight', 'stage3.13.rbr_reparam.bias'} <= set(
        official_deploy)
    assert {'backbone.stem.branch_3x3.conv.weight',
            'backbone.stem.branch_3x3.norm.running_mean',
            'backbone.stage_1.0.branch_1x1.norm.weight',
            'backbone.stage_2.1.branch_norm.weight',
            'head.fc.weight'} <= set(mmpretrain)
    assert not any('branch' in k or 'stem' in k or 'stage_' in k
                   for k in official)
    assert not any('.bn.' in k for k in mmpretrain)
    num_tensors = len(source['train'].state_dict())
    assert len(official) == len(mmpretrain) == num_tensors + 2


def test_mmpretrain_se_names_round_trip():
    ours = {'stage_1.0.se_layer.conv1.conv.weight': torch.ones(1),
            'stage_1.0.se_layer.conv2.conv.bias': torch.zeros(1)}
    theirs = to_layout(ours, 'mmpretrain')
    assert set(theirs) == {'backbone.stage_1.0.se_layer.conv1.conv.weight',
                           'backbone.stage_1.0.se_layer.conv2.conv.bias'}
    assert to_backbone_keys(theirs) == (ours, [])


@pytest.mark.parametrize('name', TRAIN_CHECKPOINTS)
def test_training_weights_load_into_training_form(name, source,
                                                  checkpoint_files):
    model = pretrained(checkpoint_files[name])
    outputs = features(model, source['x'])
    assert all(torch.equal(a, b)
               for a, b in zip(outputs, source['train_features']))


@pytest.mark.parametrize('name', TRAIN_CHECKPOINTS + DEPLOY_CHECKPOINTS)
def test_any_weights_load_into_deploy_form(name, source, checkpoint_files):
    model = pretrained(checkpoint_files[name], deploy=True)
    outputs = features(model, source['x'])
    assert_features_close(outputs, source['train_features'])
    assert_features_close(outputs, source['deploy_features'])


def test_segmentor_checkpoint_loads_its_backbone(source, tmp_path):
    state = {f'backbone.{k}': v
             for k, v in source['train'].state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.randn(19, 1280, 1, 1)
    path = str(tmp_path / 'segmentor.pth')
    torch.save({'meta': {}, 'state_dict': state}, path)
    outputs = features(pretrained(path), source['x'])
    assert all(torch.equal(a, b)
               for a, b in zip(outputs, source['train_features']))


def test_deploy_weights_are_refused_for_training_form(checkpoint_files):
    with pytest.raises(CheckpointMismatch,
                       match='deploy-form.*cannot be split.*deploy=True'):
        pretrained(checkpoint_files['official-deploy'])


@pytest.mark.parametrize('deploy', [False, True])
def test_wrong_arch_names_both_archs(deploy, checkpoint_files):
    with pytest.raises(CheckpointMismatch,
                       match='RepVGG-A0 but the model is RepVGG-A1'):
        pretrained(checkpoint_files['official-train'], arch='A1',
                   deploy=deploy)


@pytest.mark.parametrize('deploy', [False, True])
def test_missing_and_unexpected_keys_are_logged_as_warnings(
        deploy, source, tmp_path, warnings_logged):
    state = source['train'].state_dict()
    del state['stage_3.2.branch_1x1.conv.weight']
    state['stage_3.2.branch_3x3.extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'partial.pth')
    torch.save(state, path)
    pretrained(path, deploy=deploy)
    messages = [r.getMessage() for r in warnings_logged]
    assert any('1 missing keys' in m
               and 'stage_3.2.branch_1x1.conv.weight' in m for m in messages)
    assert any('1 unexpected keys' in m
               and 'stage_3.2.branch_3x3.extra.weight' in m for m in messages)


def test_checkpoint_without_backbone_is_refused(tmp_path):
    path = str(tmp_path / 'head_only.pth')
    torch.save({'fc.weight': torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointMismatch,
                       match='holds no RepVGG backbone weights'):
        pretrained(path)


# ---- tools/convert_checkpoint.py ---------------------------------------
@pytest.fixture(scope='module')
def convert_tool():
    return load_tool('convert_checkpoint')


def test_convert_train_to_deploy_matches(source, checkpoint_files, tmp_path,
                                         convert_tool):
    dst = str(tmp_path / 'deploy.pth')
    argv = [checkpoint_files['official-train-in-model-ddp'], dst, '--arch',
            ARCH, '--to', 'deploy']
    assert convert_tool.main(argv) == 0
    written = torch.load(dst, weights_only=True)
    assert written['meta'] == dict(
        arch=ARCH, form='deploy', layout='repvgg-seg',
        source=checkpoint_files['official-train-in-model-ddp'])
    assert all('.branch_reparam.' in k for k in written['state_dict'])
    assert os.listdir(tmp_path) == ['deploy.pth']  # no temporary file left
    outputs = features(pretrained(dst, deploy=True), source['x'])
    assert_features_close(outputs, source['train_features'])


def test_convert_to_official_layout_loads_back(source, checkpoint_files,
                                               tmp_path, convert_tool):
    dst = str(tmp_path / 'official.pth')
    argv = [checkpoint_files['mmpretrain-train'], dst, '--arch', ARCH,
            '--layout', 'official']
    assert convert_tool.main(argv) == 0
    state = torch.load(dst, weights_only=True)['state_dict']
    assert set(state) == set(to_layout(source['train'].state_dict(),
                                       'official'))
    outputs = features(pretrained(dst), source['x'])
    assert all(torch.equal(a, b)
               for a, b in zip(outputs, source['train_features']))


def test_convert_keeps_the_source_form_by_default(source, checkpoint_files,
                                                  tmp_path, convert_tool):
    dst = str(tmp_path / 'ours.pth')
    argv = [checkpoint_files['official-deploy-in-state_dict-ddp'], dst,
            '--arch', ARCH]
    assert convert_tool.main(argv) == 0
    assert torch.load(dst, weights_only=True)['meta']['form'] == 'deploy'
    outputs = features(pretrained(dst, deploy=True), source['x'])
    assert all(torch.equal(a, b)
               for a, b in zip(outputs, source['deploy_features']))


@pytest.mark.parametrize('argv, message', [
    (['official-deploy', 'out.pth', '--arch', 'A0', '--to', 'train'],
     'deploy-form.*cannot be split'),
    (['official-train', 'out.pth', '--arch', 'A1'],
     'holds RepVGG-A0 weights, not RepVGG-A1'),
    (['official-train', 'official-train', '--arch', 'A0'],
     'refusing to overwrite the source'),
])
def test_convert_refusals_exit_2_with_a_message(
        argv, message, checkpoint_files, tmp_path, convert_tool, capsys):
    def path(arg):
        return checkpoint_files.get(arg, str(tmp_path / arg))

    src, dst = path(argv[0]), path(argv[1])
    src_before = os.path.exists(src) and os.stat(src)
    assert convert_tool.main([src, dst] + argv[2:]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and re.search(message, err)
    assert not os.path.exists(tmp_path / 'out.pth')
    assert src_before == (os.path.exists(src) and os.stat(src))


def test_convert_is_strict_about_missing_weights(source, tmp_path):
    state = source['train'].state_dict()
    del state['stage_2.1.branch_norm.running_var']
    src = str(tmp_path / 'partial.pth')
    torch.save(state, src)
    with pytest.raises(ConversionError,
                       match='missing .*stage_2.1.branch_norm.running_var'):
        convert_checkpoint(src, str(tmp_path / 'out.pth'), ARCH)


def test_failed_write_leaves_destination_untouched(
        checkpoint_files, tmp_path, monkeypatch, convert_tool, capsys):
    dst = tmp_path / 'existing.pth'
    dst.write_bytes(b'previous content')

    def disk_full(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', disk_full)
    argv = [checkpoint_files['official-train'], str(dst), '--arch', ARCH]
    assert convert_tool.main(argv) == 2
    assert 'No space left on device' in capsys.readouterr().err
    assert dst.read_bytes() == b'previous content'
    assert os.listdir(tmp_path) == ['existing.pth']


def test_convert_cli_fails_without_traceback(checkpoint_files, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, 'tools',
                                      'convert_checkpoint.py'),
         checkpoint_files['official-deploy'], str(tmp_path / 'out.pth'),
         '--arch', ARCH, '--to', 'train'],
        capture_output=True, text=True,
        env={**os.environ, 'PYTHONPATH': REPO_ROOT})
    assert result.returncode == 2
    assert 'error: ' in result.stderr and 'deploy-form' in result.stderr
    assert 'Traceback' not in result.stderr
