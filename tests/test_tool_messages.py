"""What the tools print besides results: no known-harmless library
warnings (real ones still show), complete --help with every option
explained, and logs of a fused model's test next to the model."""
import os
import subprocess
import sys

import pytest
import torch
from forked import run_tool
from helpers import REPO_ROOT

from repvgg_seg.apis import fuse_checkpoint
from repvgg_seg.datasets import generate_citymini, prepare_cityscapes
from repvgg_seg.models import build_model
from repvgg_seg.utils.config import read_config

TINY_CONFIG = os.path.join(REPO_ROOT, 'tests', 'configs',
                           'pspnet_repvgg_tiny_citymini.py')
#: The tools of this package (the benchmark, video and classification tools
#: have their own tests).
TOOLS = ('train', 'test', 'check_dataset', 'prepare_cityscapes',
         'make_citymini', 'export_onnx', 'fuse', 'convert_checkpoint')


def tool(name):
    return os.path.join(REPO_ROOT, 'tools', f'{name}.py')


def test_known_harmless_warnings_are_silenced():
    """A fresh interpreter, as a tool runs: importing the package, building
    a PSPNet (mmseg's loss warnings) and the visualization hook."""
    code = (
        'import warnings, repvgg_seg\n'
        'from repvgg_seg.models import build_model\n'
        'from repvgg_seg.utils.config import read_config\n'
        f'build_model(read_config({TINY_CONFIG!r}))\n'
        'from mmengine.visualization import Visualizer\n'
        'from mmseg.engine.hooks import SegVisualizationHook\n'
        'Visualizer.get_instance("visualizer")\n'
        'SegVisualizationHook(draw=False)\n'
        'warnings.warn("a real warning")\n')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for message in ('pkg_resources is deprecated', 'build_loss',
                    'avg_non_ignore', 'The draw is False'):
        assert message not in result.stderr, result.stderr
    assert 'a real warning' in result.stderr


def help_text(name):
    result = run_tool(tool(name), '--help')
    assert result.returncode == 0, result
    return result.stdout


@pytest.mark.parametrize('name', TOOLS)
def test_help_is_complete(name):
    """The description is a whole sentence; every option says what it
    does (argparse prints an option without help alone on its line, with
    no indented explanation after it)."""
    lines = help_text(name).splitlines()
    description = lines[lines.index('') + 1]
    assert description.endswith('.'), description
    options = lines[next(i for i, line in enumerate(lines) if line in (
        'positional arguments:', 'options:', 'optional arguments:')):]
    for line, after in zip(options, options[1:] + ['']):
        if line.startswith('  -') and '  ' not in line.strip():
            assert after.startswith(' ' * 8) and after.strip() and \
                not after.strip().startswith('-'), f'{name}: {line}'


@pytest.fixture(scope='module')
def fused(tmp_path_factory):
    folder = tmp_path_factory.mktemp('fused')
    trained = folder / 'trained.pth'
    torch.save({'state_dict': build_model(read_config(TINY_CONFIG))
                .state_dict()}, trained)
    fuse_checkpoint(TINY_CONFIG, str(trained), str(folder / 'fused.pth'))
    root = folder / 'citymini'
    generate_citymini(root, num_train=1, num_val=1, height=64, width=128)
    prepare_cityscapes(root, nproc=1)
    return folder


def test_fused_model_logs_go_next_to_it(fused, tmp_path):
    result = run_tool(tool('test'), fused / 'fused.py', fused / 'fused.pth',
                      '--cfg-options', 'test_dataloader.dataset.data_root='
                      f'{fused / "citymini"}',
                      setup=lambda: os.chdir(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / 'work_dirs').exists()
    logs = list(fused.glob('*/*.log'))
    assert len(logs) == 1 and 'mIoU' in logs[0].read_text()


@pytest.mark.parametrize('with_checkpoint', [False, True])
def test_dataset_meta_warning_only_for_a_checkpoint(with_checkpoint, fused,
                                                    monkeypatch):
    """Cityscapes' classes are the default without a checkpoint; only a
    checkpoint saved without them deserves the warning."""
    from repvgg_seg.apis import init_segmentor
    from repvgg_seg.models.checkpoints import reading
    logged = []
    monkeypatch.setattr(reading, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    init_segmentor(TINY_CONFIG,
                   str(fused / 'trained.pth') if with_checkpoint else None)
    warned = any('no dataset_meta' in message for message in logged)
    assert warned == with_checkpoint
