"""Options that cannot work are refused by argparse (usage and one
``error:`` line, exit 2) before anything is loaded or written."""
import argparse
import os
import re

import pytest
from forked import run_tool
from helpers import REPO_ROOT

from repvgg_seg_cli import add_cfg_options


def tool(name):
    return os.path.join(REPO_ROOT, 'tools', f'{name}.py')


def usage_error(result):
    assert result.returncode == 2, result
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if ' error: ' in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize('args, expected', [
    (['--shape', '0', '0'], r'--shape: 0 is out of range: expected a '
     r'positive integer 1\.\.8192'),
    (['--shape', '-8', '16'], r'--shape: -8 is out of range'),
    (['--shape', '100000', '100000'], r'--shape: 100000 is out of range'),
    (['--opset', '5'], r'--opset: 5 is out of range: expected an opset 11'),
    (['--opset', '99'], r'--opset: 99 is out of range'),
])
def test_export_onnx_refuses(args, expected, tmp_path):
    out = tmp_path / 'model.onnx'
    result = run_tool(tool('export_onnx'), 'config.py', 'model.pth', out,
                      *args)
    assert re.search(expected, usage_error(result))
    assert not out.exists()


@pytest.mark.parametrize('args, expected', [
    (['--fps', '0'], r'--fps: 0 is out of range: expected a positive number'),
    (['--fps', 'nan'], r'--fps: nan is out of range'),
    (['--frames', '0'], r'--frames: 0 is out of range'),
    (['--num-val', '0'], r'--num-val: 0 is out of range'),
    (['--height', '4'], r'--height: 4 is out of range: expected an integer '
     r'32\.\.8192'),
])
def test_make_citymini_refuses(args, expected, tmp_path):
    out = tmp_path / 'citymini'
    result = run_tool(tool('make_citymini'), '--out', out, '--video',
                      tmp_path / 'x.mp4', *args)
    assert re.search(expected, usage_error(result))
    assert not out.exists()


@pytest.mark.parametrize('name', ['train', 'test', 'check_dataset'])
@pytest.mark.parametrize('item', ['foo', '=1'])
def test_cfg_options_item_must_be_key_value(name, item):
    args = ['config.py', 'model.pth'] if name == 'test' else ['config.py']
    result = run_tool(tool(name), *args, '--cfg-options', item)
    assert f"argument --cfg-options: {item!r} is not KEY=VALUE" in \
        usage_error(result)


def test_cfg_options_values_parse_as_in_mmseg():
    parser = argparse.ArgumentParser()
    add_cfg_options(parser, 'a=1')
    args = parser.parse_args(['--cfg-options', 'a=1', 'b=[1,(2,3)]', 'c=x=y',
                              '--cfg-options', 'd=True'])
    assert args.cfg_options == {'a': 1, 'b': [1, (2, 3)], 'c': 'x=y',
                                'd': True}
