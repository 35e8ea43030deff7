"""What the tools print besides results: no known-harmless library
warnings (real ones still show), complete --help with every option
explained, answered without importing torch, and logs of a fused model's
test next to the model."""
import glob
import logging
import os
import subprocess
import sys

import pytest
import torch
from forked import run_tool
from helpers import REPO_ROOT

from repvgg_seg.apis import fuse_checkpoint
from repvgg_seg.apis.console import QuietConsole
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


def test_known_harmless_warnings_stay_out_of_the_test_summary():
    """pytest resets the filters compat.warnings installs; tests/conftest.py
    installs them again: a test that builds a PSPNet (mmseg's loss
    warnings) after importing mmengine (torch's jit deprecations) ends
    with no warnings summary."""
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         os.path.join(REPO_ROOT, 'tests', 'test_tool_options.py'),
         '-k', 'an_unreadable_image'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert '1 passed' in result.stdout
    assert 'warning' not in result.stdout, result.stdout[-3000:]


def help_text(name):
    """``--help`` of tool ``name`` (or of the script at that path)."""
    result = run_tool(name if os.sep in name else tool(name), '--help')
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


#: Every command-line entry point: tools/*.py and the demo.
ALL_TOOLS = sorted(glob.glob(os.path.join(REPO_ROOT, 'tools', '*.py'))) + [
    os.path.join(REPO_ROOT, 'demo', 'image_demo.py')]
#: What a tool may import only after parsing (seconds of start-up).
HEAVY_PACKAGES = {'torch', 'mmseg', 'mmengine', 'mmcv', 'repvgg_seg'}


@pytest.mark.parametrize('script', ALL_TOOLS, ids=os.path.basename)
def test_help_imports_nothing_heavy(script):
    """``--help`` in a fresh interpreter, as a user runs it: the imports
    ``-X importtime`` lists hold none of the packages a run needs."""
    result = subprocess.run([sys.executable, '-X', 'importtime', script,
                             '--help'], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith('usage:')
    imported = {line.rsplit('|', 1)[1].strip().split('.')[0]
                for line in result.stderr.splitlines()
                if line.startswith('import time:') and '|' in line}
    assert 'argparse' in imported  # the probe sees the tool's imports
    assert not imported & HEAVY_PACKAGES


def values_from_the_package():
    """What each tool's help must name: values it checks against the
    package only after parsing (listing them would import torch)."""
    from repvgg_seg.apis import AMP_DTYPES, DEFAULT_TRAINING_VARIANTS
    from repvgg_seg.deploy.onnx_export import DEFAULT_OPSET
    from repvgg_seg.models import FORMS
    from repvgg_seg.models.checkpoints import LAYOUTS
    return {'train': list(AMP_DTYPES),
            'convert_checkpoint': [*FORMS, *LAYOUTS],
            'benchmark_train': [' '.join(DEFAULT_TRAINING_VARIANTS)],
            'export_onnx': [f'default: {DEFAULT_OPSET}']}


@pytest.mark.parametrize('script', sorted(values_from_the_package()))
def test_help_names_the_packages_values(script):
    text = ' '.join(help_text(script).split())
    for value in values_from_the_package()[script]:
        assert value in text, f'{script} --help lacks {value}'


@pytest.mark.parametrize('script, args, expected', [
    ('train', [TINY_CONFIG, '--amp', 'fp8'],
     "argument --amp: invalid choice: 'fp8' (choose from fp16, bf16)"),
    ('convert_checkpoint', [TINY_CONFIG, 'b.pth', '--arch', 'Z9'],
     "argument --arch: invalid choice: 'Z9' (choose from A0, A1,"),
    ('convert_checkpoint', [TINY_CONFIG, 'b.pth', '--layout', 'timm'],
     "argument --layout: invalid choice: 'timm'"),
    ('analyze_archs', ['--archs', 'A0', 'X'],
     "argument --archs: invalid choice: 'X'"),
    ('benchmark_train', ['--variants', 'cl-fp8'],
     "argument --variants: invalid choice: 'cl-fp8'"),
    ('export_onnx', [TINY_CONFIG, TINY_CONFIG, 'o.onnx', '--opset', '99'],
     'argument --opset: 99 is out of range: expected an opset 11..'),
])
def test_values_from_the_package_are_checked_when_parsing(script, args,
                                                          expected):
    result = run_tool(tool(script), *args)
    assert result.returncode == 2, result
    assert expected in result.stderr, result.stderr


def test_help_texts_point_where_their_lists_are():
    assert 'see above' not in help_text('benchmark')
    assert 'our RDRNet configs by short name (listed below)' in ' '.join(
        help_text('benchmark').split())


@pytest.mark.parametrize('script, defaults', [
    (os.path.join(REPO_ROOT, 'demo', 'image_demo.py'),
     ['demo_out', 'cpu', '0.5']),
    (tool('video_demo'),
     ['cpu', '1', '0.5', 'auto', '23', 'ultrafast', 'opencv']),
], ids=['image_demo', 'video_demo'])
def test_demo_help_shows_defaults(script, defaults):
    text = ' '.join(help_text(script).split())
    for default in defaults:
        assert f'(default: {default})' in text, text


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


def _record(message, level=logging.INFO, **extra):
    record = logging.LogRecord('mmengine', level, __file__, 0, message, None,
                               None)
    record.__dict__.update(extra)
    return record


def test_quiet_console_shows_the_progress_at_every_tenth():
    console = QuietConsole()
    shown = [done for done in range(20, 481, 20) if console.filter(
        _record(f'Iter(train) [{done:3d}/480]  lr: 1.0e-03  loss: 0.5'))]
    assert shown == [20, 60, 100, 160, 200, 240, 300, 340, 400, 440, 480]


@pytest.mark.parametrize('record, shown', [
    (_record('a real warning', logging.WARNING), True),
    (_record('The prefix is not set in metric class IoUMetric.',
             logging.WARNING), False),
    (_record('"FileClient" will be deprecated in future.', logging.WARNING),
     False),
    (_record('Config:\ncrop_size = (128, 256)'), False),
    (_record('Distributed training is not used, all SyncBatchNorm (SyncBN) '
             'layers in the model will be reverted'), False),
    (_record('Saving checkpoint at 160 iterations'), False),
    (_record('per class results:'), True),
    (_record('\n+-------+-------+\n|  road | 98.05 |'), True),
    (_record('resumed epoch: 0, iter: 4'), True),
    (_record('Trained 480 iterations in 5 min 2 s', console=True), True),
], ids=['warning', 'prefix', 'file-client', 'config', 'syncbn', 'saving',
        'table-heading', 'table', 'resumed', 'summary'])
def test_quiet_console_keeps_only_what_a_user_reads(record, shown):
    assert QuietConsole().filter(record) is shown
