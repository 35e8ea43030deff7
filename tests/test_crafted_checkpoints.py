"""Crafted or mislabelled checkpoint files: each loader refuses them with
one line that says what the file is (no traceback, no silent cast, no
false alarm about code)."""
import json
import os
import re
import struct

import pytest
import torch
from forked import run_tool
from helpers import REPO_ROOT

from repvgg_seg.apis import init_segmentor
from repvgg_seg.models import (RepVGG, build_model, convert_checkpoint,
                               extract_backbone)
from repvgg_seg.utils.config import read_config
from repvgg_seg.utils.errors import UserError

TINY_CONFIG = os.path.join(REPO_ROOT, 'tests', 'configs',
                           'pspnet_repvgg_tiny_citymini.py')


@pytest.fixture(scope='module')
def tiny_state():
    return build_model(read_config(TINY_CONFIG)).state_dict()


def _with(state, key, value):
    return {**state, key: value}


#: name -> (checkpoint given the tiny state dict, what the error says).
CRAFTED = {
    'int_key': (lambda s: {'state_dict': {**s, 7: torch.zeros(1)}},
                r"key 7 of type int"),
    'zero_in_channels': (lambda s: {'state_dict': _with(
        s, 'backbone.stage_1.0.branch_3x3.conv.weight',
        torch.zeros(16, 0, 3, 3))}, r'shape \(16, 0, 3, 3\), not a conv'),
    'one_d_kernel': (lambda s: {'state_dict': _with(
        s, 'backbone.stage_1.0.branch_3x3.conv.weight', torch.zeros(16))},
                     r'shape \(16,\), not a conv kernel'),
    'block_index': (lambda s: {'state_dict': _with(
        s, 'backbone.stage_1.abc.branch_3x3.conv.weight',
        torch.zeros(16, 16, 3, 3))}, r"block index 'abc' is not a number"),
    'list': (lambda s: [s], r'the checkpoint is a list, not a dict'),
    'tensor': (lambda s: torch.zeros(3), r'the checkpoint is a Tensor'),
    'meta_string': (lambda s: {'state_dict': s, 'meta': 'fused'},
                    r"its 'meta' is a str, not a dict"),
    'int8_weights': (lambda s: {'state_dict': {
        k: v.to(torch.int8) if v.is_floating_point() else v
        for k, v in s.items()}}, r'holds int8 values where the model has '
                     r'float weights'),
    'bool_weights': (lambda s: {'state_dict': _with(
        s, 'decode_head.conv_seg.weight',
        s['decode_head.conv_seg.weight'] > 0)}, r'holds bool values'),
}


@pytest.fixture(scope='module')
def crafted(tmp_path_factory, tiny_state):
    folder = tmp_path_factory.mktemp('crafted')
    paths = {}
    for name, (make, _) in CRAFTED.items():
        paths[name] = str(folder / f'{name}.pth')
        torch.save(make(tiny_state), paths[name])
    return paths


@pytest.mark.parametrize('name', list(CRAFTED))
def test_inference_api_refuses_crafted_checkpoint(name, crafted):
    with pytest.raises(UserError, match=CRAFTED[name][1]):
        init_segmentor(TINY_CONFIG, crafted[name])


def tool(name):
    return os.path.join(REPO_ROOT, 'tools', f'{name}.py')


def error_line(result):
    assert result.returncode == 2, result
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()
              and not line.startswith(('WARNING', '/'))]
    assert len(errors) == 1 and errors[0].startswith('error: '), \
        result.stderr
    return errors[0]


@pytest.mark.parametrize('name', ['int_key', 'one_d_kernel', 'list',
                                  'meta_string', 'int8_weights'])
def test_test_tool_refuses_crafted_checkpoint(name, crafted, tmp_path):
    result = run_tool(tool('test'), TINY_CONFIG, crafted[name],
                      '--work-dir', tmp_path)
    assert re.search(CRAFTED[name][1], error_line(result))


def test_convert_refuses_integer_weights(tmp_path):
    state = {k: v.to(torch.int8) if v.is_floating_point() else v
             for k, v in RepVGG(arch='A0').state_dict().items()}
    src, dst = tmp_path / 'int8.pth', tmp_path / 'out.pth'
    torch.save(state, src)
    with pytest.raises(UserError, match='holds int8 values'):
        convert_checkpoint(str(src), str(dst))
    assert not dst.exists()


def safetensors_bytes():
    header = json.dumps({'w': dict(dtype='F32', shape=[1],
                                   data_offsets=[0, 4])}).encode()
    return struct.pack('<Q', len(header)) + header + bytes(4)


@pytest.mark.parametrize('kind, expected', [
    ('directory', r'is a directory: give the checkpoint file inside it'),
    ('random', r'is not a PyTorch checkpoint \(neither the zip'),
    ('safetensors', r'is a safetensors file, not a PyTorch checkpoint'),
    ('empty', r'the file is empty'),
])
def test_misnamed_files_say_what_they_are(kind, expected, tmp_path):
    path = tmp_path / 'model.pth'
    if kind == 'directory':
        path.mkdir()
    else:
        path.write_bytes({'random': bytes(range(7, 250)),
                          'safetensors': safetensors_bytes(),
                          'empty': b''}[kind])
    with pytest.raises(UserError, match=expected) as info:
        init_segmentor(TINY_CONFIG, str(path))
    assert 'arbitrary code' not in str(info.value)


@pytest.mark.parametrize('name', ['int_key', 'one_d_kernel', 'block_index',
                                  'list', 'meta_string'])
@pytest.mark.parametrize('loader', ['convert', 'extract', 'pretrained'])
def test_every_loader_refuses_crafted_checkpoint(loader, name, crafted,
                                                 tmp_path):
    out = str(tmp_path / 'out.pth')
    load = {'convert': lambda path: convert_checkpoint(path, out),
            'extract': lambda path: extract_backbone(path, out),
            'pretrained': lambda path: RepVGG(arch='A0', init_cfg=dict(
                type='Pretrained', checkpoint=path)).init_weights()}[loader]
    with pytest.raises(UserError, match=CRAFTED[name][1]):
        load(crafted[name])
    assert not os.path.exists(out)
