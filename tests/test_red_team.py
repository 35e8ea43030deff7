"""Defects found by the red team, each reproduced as the attack or accident
it was: code in a YAML config, escape sequences from a file, outputs that
overwrite inputs, concurrent runs, NaN weights passing checks, partial
outputs after a failure, temporary files left behind."""
import os
import re

import pytest
from forked import run_tool
from helpers import REPO_ROOT

from repvgg_seg.utils.cli import cli_main
from repvgg_seg.utils.config import read_config
from repvgg_seg.utils.errors import ConfigError, UserError
from repvgg_seg.utils.text import printable


def tool(name):
    return os.path.join(REPO_ROOT, 'tools', f'{name}.py')


def one_error_line(result):
    assert result.returncode == 2, result
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1, result.stderr
    return errors[0]


# 1. A YAML config is data: reading it must not run code --------------------

@pytest.mark.parametrize('name', ['evil.yaml', 'child.yml', 'child.py'])
def test_yaml_config_cannot_run_code(name, tmp_path):
    marker = tmp_path / 'MARKER'
    (tmp_path / 'evil.yaml').write_text(
        f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    (tmp_path / 'child.yml').write_text('_base_: [evil.yaml]\ny: 1\n')
    (tmp_path / 'child.py').write_text("_base_ = ['evil.yaml']\n")
    result = run_tool(tool('test'), tmp_path / name, tmp_path / 'ckpt.pth')
    assert re.search(r'YAML config .*line 1 .*Python object',
                     one_error_line(result))
    assert not marker.exists()


def test_yaml_and_json_data_configs_still_read(tmp_path):
    (tmp_path / 'a.yaml').write_text('model: {type: X, depth: [1, 2]}\n')
    (tmp_path / 'b.json').write_text('{"_base_": ["a.yaml"], "lr": 0.1}')
    cfg = read_config(tmp_path / 'b.json')
    assert cfg.model.depth == [1, 2] and cfg.lr == 0.1
    with pytest.raises(ConfigError):
        (tmp_path / 'c.yaml').write_text('x: !!python/name:os.system\n')
        read_config(tmp_path / 'c.yaml')


# 2. Text from files cannot drive the terminal ------------------------------

EVIL = '\x1b[2J\x1b[31mEVIL\u202e\r\n'


def test_printable_shows_control_characters():
    assert printable(EVIL) == '\\x1b[2J\\x1b[31mEVIL\\u202e\\x0d\\x0a'
    assert printable('Zürich café 街') == 'Zürich café 街'
    assert printable(7) == '7'


def test_error_line_quoting_a_file_is_printable(capsys):
    def main():
        raise UserError(f'class {EVIL} in meta.json is unknown')

    assert cli_main(main)() == 2
    err = capsys.readouterr().err
    assert '\x1b' not in err and '\u202e' not in err and '\r' not in err
    assert err == 'error: class \\x1b[2J\\x1b[31mEVIL\\u202e in meta.json ' \
                  'is unknown\n'
