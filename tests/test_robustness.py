"""Every tool that loads a checkpoint refuses a pickle that would run code
(nothing runs), a truncated file and weights of another arch, with one
``error: ...`` line, a non-zero exit code and no traceback; tools/train.py
and tools/test.py do the same for a bad config and a missing data root.

The tools run as forked children of this process (tests/forked.py): real
processes with their own exit code and stderr, without the interpreter
start-up each.
"""
import os
import re
import signal

import numpy as np
import pytest
import torch
from forked import run_tool
from helpers import REPO_ROOT, citymini_root

from repvgg_seg.apis import init_segmentor
from repvgg_seg.datasets import make_driving_video
from repvgg_seg.models import build_model
from repvgg_seg.utils.config import read_config as load_config
from repvgg_seg.utils.errors import UserError
from repvgg_seg.deploy.predictor import as_bgr_image
from repvgg_seg.utils import is_user_error

SEG_CONFIG = os.path.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a1.py')
CLS_CONFIG = os.path.join(REPO_ROOT, 'configs', 'imagenet',
                          'repvgg_a1_imagenet.py')
TINY_CONFIG = os.path.join(REPO_ROOT, 'tests', 'configs',
                           'pspnet_repvgg_tiny_citymini.py')
A0_CONFIG = os.path.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a0_citymini.py')
#: What the one error line must say about each bad checkpoint.
EXPECTED = {
    'runs_code': r'refusing to load .*asks for posix.system.*nothing was '
                 r'executed',
    'truncated': r'truncated',
    'other_arch': r'RepVGG-A0.* RepVGG-A1',
}


class RunsCode:
    """Pickles as a call of ``os.system``: loading it unsafely runs it."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


def tool(name):
    return os.path.join(REPO_ROOT, 'tools', f'{name}.py')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 2, 2)


def data_options(root, *splits):
    return [f'{split}_dataloader.dataset.data_root={root}'
            for split in splits]


@pytest.fixture(scope='module')
def files(tmp_path_factory, data_root):
    """The bad checkpoints, a marker the malicious one would create, and
    inputs the tools need (a video, an image)."""
    folder = tmp_path_factory.mktemp('inputs')
    marker = folder / 'code_ran'
    paths = {name: str(folder / f'{name}.pth') for name in EXPECTED}
    torch.save({'state_dict': {}, 'meta': RunsCode(f'touch {marker}')},
               paths['runs_code'])
    a0 = build_model(load_config(A0_CONFIG))
    torch.save({'state_dict': a0.state_dict()}, paths['other_arch'])
    data = open(paths['other_arch'], 'rb').read()
    open(paths['truncated'], 'wb').write(data[:len(data) // 2])
    video = make_driving_video(str(folder / 'drive.mp4'), 3, 5, (128, 64))
    image = next((data_root / 'leftImg8bit' / 'val').glob('*/*.png'))
    return dict(paths, marker=marker, video=video, image=str(image),
                data_root=data_root)


#: name -> (script, arguments given ``files``, ``checkpoint``, ``out``).
TOOLS = {
    'test': ('test', lambda f, ckpt, out: [SEG_CONFIG, ckpt, '--work-dir',
                                           out]),
    'train': ('train', lambda f, ckpt, out: [
        SEG_CONFIG, '--work-dir', out, '--cfg-options', f'load_from={ckpt}',
        *data_options(f['data_root'], 'train', 'val')]),
    'fuse': ('fuse', lambda f, ckpt, out: [SEG_CONFIG, ckpt, out]),
    'video_demo': ('video_demo', lambda f, ckpt, out: [
        f['video'], SEG_CONFIG, ckpt, '--out', out + '.mp4']),
    'classify': ('classify', lambda f, ckpt, out: [CLS_CONFIG, ckpt,
                                                   f['image']]),
    'export_onnx': ('export_onnx', lambda f, ckpt, out: [SEG_CONFIG, ckpt,
                                                         out]),
    'convert_checkpoint': ('convert_checkpoint', lambda f, ckpt, out: [
        ckpt, out, '--arch', 'A1']),
    'extract_backbone': ('extract_backbone', lambda f, ckpt, out: [ckpt,
                                                                   out]),
}
CASES = [(name, case) for name in TOOLS for case in EXPECTED
         if not (name == 'extract_backbone' and case == 'other_arch')]


def assert_one_error_line(result, pattern):
    assert result.returncode > 0, result
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ') or ': error: ' in line]
    assert len(errors) == 1, result.stderr
    assert re.search(pattern, errors[0]), errors[0]


@pytest.mark.parametrize('name, case', CASES)
def test_tool_refuses_bad_checkpoint(name, case, files, tmp_path):
    script, make_args = TOOLS[name]
    out = str(tmp_path / 'out')
    result = run_tool(tool(script), *make_args(files, files[case], out))
    expected = EXPECTED[case]
    if (name, case) == ('classify', 'other_arch'):  # an A0 segmentor's
        expected = "holds a segmentor's weights, the config builds a clas"
    assert_one_error_line(result, expected)
    assert not files['marker'].exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith('out')]


@pytest.mark.parametrize('case', list(EXPECTED))
def test_inference_api_refuses_bad_checkpoint(case, files):
    with pytest.raises(UserError, match=EXPECTED[case]):
        init_segmentor(SEG_CONFIG, files[case])
    assert not files['marker'].exists()


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tiny') / 'tiny.pth')
    torch.save({'state_dict': build_model(load_config(TINY_CONFIG))
                .state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def broken_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('configs') / 'broken.py'
    path.write_text(f'_base_ = [{TINY_CONFIG!r}]\nmodel = dict(\n')
    return str(path)


@pytest.mark.parametrize('name', ['train', 'test'])
@pytest.mark.parametrize('case, expected', [
    ('missing_config', 'argument config: .*nowhere.py does not exist'),
    ('broken_config', 'cannot read config .*broken.py .*SyntaxError'),
    ('missing_data', r'nowhere/.* does not exist.*prepare the data set .*'
     r'data_root=DIR'),
])
def test_train_and_test_refuse_bad_config_and_data(
        name, case, expected, broken_config, tiny_checkpoint, tmp_path):
    config = {'missing_config': str(tmp_path / 'nowhere.py'),
              'broken_config': broken_config}.get(case, TINY_CONFIG)
    args = [config, tiny_checkpoint] if name == 'test' else [config]
    splits = ('test', ) if name == 'test' else ('train', 'val')
    result = run_tool(tool(name), *args, '--work-dir', tmp_path,
                      '--cfg-options',
                      *data_options(tmp_path / 'nowhere', *splits))
    assert_one_error_line(result, expected)


#: The tools that write a checkpoint or model file, given an A0 checkpoint.
WRITERS = {
    'convert_checkpoint': lambda ckpt, out: [ckpt, out, '--arch', 'A0'],
    'extract_backbone': lambda ckpt, out: [ckpt, out],
    'fuse': lambda ckpt, out: [A0_CONFIG, ckpt, out],
    'export_onnx': lambda ckpt, out: [A0_CONFIG, ckpt, out, '--shape', 64,
                                      128],
}


def die_before_the_data_is_on_disk():
    """SIGKILL at the ``fsync`` of a write, as a crash would."""
    os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize('name', list(WRITERS))
def test_writers_are_atomic(name, files, tmp_path):
    """Killed while saving, a tool leaves nothing under the output name;
    otherwise the file is there, readable as any file the user writes."""
    out = tmp_path / 'out.file'
    args = WRITERS[name](files['other_arch'], out)
    killed = run_tool(tool(name), *args, setup=die_before_the_data_is_on_disk)
    assert killed.returncode == -signal.SIGKILL, killed
    assert not out.exists()
    result = run_tool(tool(name), *args)
    assert result.returncode == 0, result.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def raised(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: B902
        return exc
    raise AssertionError('nothing was raised')


def test_only_our_value_errors_are_user_errors():
    """Ours carry a message for the user; a library's may be a bug in how
    we call it, which needs its traceback."""
    assert is_user_error(raised(as_bgr_image, np.zeros((2, 2, 5))))
    assert not is_user_error(raised(np.zeros(3).reshape, 2))
    assert is_user_error(raised(open, '/nonexistent/file'))
    assert not is_user_error(raised(lambda: {}['key']))
