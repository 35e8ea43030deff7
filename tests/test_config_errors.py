"""tools/train.py and tools/test.py refuse configs and options that cannot
work with one ``error: ...`` line and exit code 2, before the Runner
starts (it would end in a traceback, or in a ZeroDivisionError at the
first validation)."""
import os
import re

import pytest
import torch
from forked import run_tool
from helpers import (REPO_ROOT, TINY_CONFIG, citymini_root, one_error_line,
                     tool)

from repvgg_seg.models import build_model
from repvgg_seg.utils.config import read_config

A0_CONFIG = os.path.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a0_citymini.py')



@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 1, 1)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('tiny') / 'tiny.pth'
    torch.save({'state_dict': build_model(read_config(TINY_CONFIG))
                .state_dict()}, path)
    return path


def data_options(root):
    return [f'{split}_dataloader.dataset.data_root={root}'
            for split in ('train', 'val', 'test')]


@pytest.mark.parametrize('option, expected', [
    ('model.backbone.arch=Z9', r"unknown arch 'Z9'"),
    ('train_cfg.max_iters=abc', r"--cfg-options train_cfg.max_iters='abc': "
     r'the config has 6 there: give an integer'),
    ('train_cfg.max_iters=-3', r'train_cfg.max_iters is -3 .*positive '
     r'integer'),
    ('train_dataloader.batch_size=0', r'train_dataloader.batch_size is 0'),
    ('train_cfg.val_interval=0', r'train_cfg.val_interval is 0'),
    ('randomness.seed=abc', r"randomness.seed='abc': .* give an integer"),
    ('optim_wrapper.optimizer.lr=nan', r'lr is nan .*finite positive'),
    ('model.decode_head.num_classes=0', r'num_classes is 0'),
    ('env_cfg.torch_num_threads=0', r'env_cfg.torch_num_threads is 0 '),
    ('model.decode_head.channels=-4', r'cannot build the (Runner|model) of '
     r'.*negative dimension -4'),
])
@pytest.mark.parametrize('name', ['train', 'test'])
def test_bad_options_are_one_line(name, option, expected, data_root,
                                  tiny_checkpoint, tmp_path):
    if name == 'test' and option.startswith(('train_', 'optim')):
        pytest.skip('a training setting')
    args = [TINY_CONFIG, tiny_checkpoint] if name == 'test' else [
        TINY_CONFIG]
    result = run_tool(tool(name), *args, '--work-dir', tmp_path,
                      '--cfg-options', *data_options(data_root), option)
    assert re.search(expected, one_error_line(result))


def test_empty_config(tmp_path):
    config = tmp_path / 'empty.py'
    config.write_text('')
    result = run_tool(tool('train'), config, '--work-dir', tmp_path)
    assert re.search(r'empty.py defines no model', one_error_line(result))


def test_pytorch_launcher_without_torchrun(tmp_path, monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    result = run_tool(tool('train'), TINY_CONFIG, '--work-dir', tmp_path,
                      '--launcher', 'pytorch')
    assert re.search(r'--launcher pytorch runs under torchrun, which sets '
                     r'RANK', one_error_line(result))


def test_resume_into_a_work_dir_of_another_arch(data_root, tmp_path):
    """The Runner would load what fits and warn, then die on the optimizer
    state."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    torch.save({'state_dict': build_model(read_config(A0_CONFIG))
                .state_dict()}, work_dir / 'iter_1.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_1.pth'))
    result = run_tool(tool('train'), TINY_CONFIG, '--work-dir', work_dir,
                      '--resume', '--cfg-options', *data_options(data_root))
    assert re.search(r'iter_1.pth does not match .*RepVGG-A0.*RepVGG-custom',
                     one_error_line(result))
