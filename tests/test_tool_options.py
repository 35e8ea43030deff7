"""Options that cannot work are refused by argparse (usage and one
``error:`` line, exit 2) before anything is loaded or written; bad paths,
values, configs and checkpoints given to any tool are one ``error:`` line
that names the argument and the value, never a traceback."""
import argparse
import os
import re
import shutil
import stat
import tempfile

import pytest
import torch
from forked import run_tool
from helpers import REPO_ROOT, TINY_CONFIG, tiny_segmentor

from repvgg_seg.classification.transforms import (ImageReadError,
                                                  LoadCheckedImageFromFile)
from repvgg_seg_cli import add_cfg_options


def tool(name):
    return os.path.join(REPO_ROOT, 'tools', f'{name}.py')


def usage_error(result):
    """The one ``error:`` line of a refused run (argparse's ``prog: error:
    ...`` after the usage, or ``error: ...`` of a user error)."""
    assert result.returncode == 2, result
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ') or ' error: ' in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


CLASSIFIER = os.path.join(REPO_ROOT, 'configs', 'imagenet',
                          'repvgg_a0_tinyimagenet.py')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Bad arguments: a folder (holding a checkpoint), empty files, a text
    file, and checkpoints of a tiny segmentor, of a classifier with the
    same backbone (its backbone keys and an ImageNet head) and of the bare
    backbone."""
    root = tmp_path_factory.mktemp('bad')
    (root / 'dir').mkdir()
    (root / 'empty.py').write_text('')
    (root / 'empty.pth').write_bytes(b'')
    (root / 'text.txt').write_text('not an image, config or checkpoint\n')
    state = tiny_segmentor()[1].state_dict()
    torch.save({'state_dict': state}, root / 'seg.pth')
    shutil.copy(root / 'seg.pth', root / 'dir' / 'iter_2.pth')
    backbone = {k: v for k, v in state.items() if k.startswith('backbone.')}
    width = state['decode_head.conv_seg.weight'].shape[1]
    torch.save({'state_dict': dict(backbone, **{
        'head.fc.weight': torch.zeros(10, width),
        'head.fc.bias': torch.zeros(10)})}, root / 'cls.pth')
    torch.save({k.removeprefix('backbone.'): v for k, v in backbone.items()},
               root / 'backbone.pth')  # as tools/extract_backbone.py
    names = dict(dir='dir', empty_py='empty.py', empty_pth='empty.pth',
                 text='text.txt', seg='seg.pth', cls='cls.pth',
                 backbone='backbone.pth', missing='missing.py')
    return {key: str(root / name) for key, name in names.items()} | dict(
        tiny=TINY_CONFIG, classifier=CLASSIFIER)


@pytest.mark.parametrize('args, expected', [
    (['--shape', '0', '0'], r'--shape: 0 is out of range: expected a '
     r'positive integer 1\.\.8192'),
    (['--shape', '-8', '16'], r'--shape: -8 is out of range'),
    (['--shape', '100000', '100000'], r'--shape: 100000 is out of range'),
    (['--opset', '5'], r'--opset: 5 is out of range: expected an opset 11'),
    (['--opset', '99'], r'--opset: 99 is out of range'),
])
def test_export_onnx_refuses(args, expected, files, tmp_path):
    out = tmp_path / 'model.onnx'
    result = run_tool(tool('export_onnx'), TINY_CONFIG, files['seg'], out,
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
def test_cfg_options_item_must_be_key_value(name, item, files):
    args = [TINY_CONFIG, files['seg']] if name == 'test' else [TINY_CONFIG]
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


#: ``(tool, arguments, what the error line says)``; ``{name}`` stands for
#: the path of ``files[name]``. Every one is refused before a model runs.
BAD_ARGUMENTS = [
    ('train', ['{missing}'], 'argument config: {missing} does not exist'),
    ('train', ['{dir}'], 'argument config: {dir} is a folder: give the '
     'config file'),
    ('train', ['{empty_py}'], 'error: {empty_py} defines no model'),
    ('train', ['{tiny}', '--work-dir', '{text}'], 'argument --work-dir: '
     '{text} is a file: give a folder for the logs and models'),
    ('train', ['{tiny}', '--cfg-options', 'train_dataloader.num_workers=abc'],
     "--cfg-options train_dataloader.num_workers='abc': the config has 0 "
     'there: give an integer'),
    ('train', ['{tiny}', '--cfg-options', 'train_dataloader.num_workers=-1'],
     'train_dataloader.num_workers is -1'),
    ('train', ['{tiny}', '--cfg-options',
               'default_hooks.checkpoint.interval=abc'],
     "default_hooks.checkpoint.interval='abc': the config has 2 there"),
    ('train', ['{tiny}', '--cfg-options',
               'optim_wrapper.optimizer.weight_decay=abc'],
     "weight_decay='abc': the config has 0.0001 there: give a number"),
    ('test', ['{tiny}', '{dir}'], 'argument checkpoint: {dir} is a folder: '
     'give the checkpoint file (e.g. {dir}/iter_2.pth)'),
    ('test', ['{tiny}', '{empty_pth}'], 'error: cannot read checkpoint '
     '{empty_pth}: the file is empty'),
    ('test', ['{tiny}', '{cls}'], "the checkpoint holds an ImageNet "
     "classifier's weights, the config builds a segmentor: give a checkpoint "
     'trained with a segmentation config'),
    ('test', ['{tiny}', '{backbone}'], 'the checkpoint holds a bare RepVGG '
     'backbone, the config builds a segmentor: start a training from it'),
    ('test', ['{tiny}', '{seg}', '--out', '{text}'],
     'argument --out: {text} is a file'),
    ('test', ['{tiny}', '{seg}', '--show-interval', '0'],
     'argument --show-interval: 0 is out of range'),
    ('test', ['{tiny}', '{seg}', '--wait-time', '-1'], 'argument '
     '--wait-time: -1 is out of range: expected a number of seconds >= 0'),
    ('test', ['{tiny}', '{seg}', '--show-dir', '{text}'],
     '--show-dir {text} is a file'),
    ('check_dataset', ['{dir}'], 'argument config: {dir} is a folder'),
    ('classify', ['{classifier}', '{seg}', '{text}'],
     "the checkpoint holds a segmentor's weights, the config builds a "
     'classifier'),
    ('classify', ['{classifier}', '{cls}', '{dir}'],
     'argument images: {dir} is a folder: give the image file'),
    ('classify', ['{classifier}', '{cls}', '{text}', '--classes',
                  '{dir}'], 'argument --classes: {dir} is a folder'),
    ('convert_checkpoint', ['{dir}', 'out.pth'],
     'argument SRC: {dir} is a folder'),
    ('convert_checkpoint', ['{seg}', '{dir}'], 'argument DST: {dir} is a '
     'folder: give a file name for the converted checkpoint'),
    ('extract_backbone', ['{cls}', '{dir}'], 'argument out: {dir} is a '
     'folder'),
    ('fuse', ['{tiny}', '{seg}', 'fused.pth', '--out-config', '{dir}'],
     'argument --out-config: {dir} is a folder: give a file name for the '
     'deploy config'),
    ('fuse', ['{tiny}', '{cls}', 'fused.pth'],
     "the checkpoint holds an ImageNet classifier's weights"),
    ('export_onnx', ['{tiny}', '{seg}', '{dir}'],
     'argument out: {dir} is a folder'),
    ('analyze_archs', ['--input-size', '0'], 'argument --input-size: 0 is '
     'out of range: expected a side 32..8192'),
    ('analyze_archs', ['--update-readme', '{dir}'],
     'argument --update-readme: {dir} is a folder'),
    ('make_citymini', ['--out', '{text}'],
     'argument --out: {text} is a file: give a folder for the data set'),
    ('make_citymini', ['--seed', '-1'], 'argument --seed: -1 is out of '
     'range'),
    ('make_citymini', ['--video', '{dir}'], 'argument --video: {dir} is a '
     'folder'),
    ('make_citymini', ['--video', '{text}', '--frames', '1'],
     'cannot write a video to {text}: give a file name ending in .mp4 '
     'or .avi'),
    ('prepare_cityscapes', ['{text}'], 'Cityscapes root {text} is a '
     'file'),
    ('../demo/image_demo', ['{text}', '{tiny}', '{seg}', '--opacity',
                            '2'], 'argument --opacity: 2 is out of range'),
    ('../demo/image_demo', ['{text}', '{tiny}', '{seg}',
                            '--out-dir', '{text}'],
     'argument --out-dir: {text} is a file'),
    ('video_demo', ['{text}', '{tiny}', '{seg}', '--batch-size', '0'],
     'argument --batch-size: 0 is out of range'),
    ('video_demo', ['{text}', '{tiny}', '{seg}', '--crf', '-5'],
     'argument --crf: -5 is out of range: expected an integer 0..51'),
    ('benchmark', ['{tiny}', '--repeat', '0'], 'argument --repeat: 0 is out '
     'of range'),
    ('benchmark', ['{tiny}', '--warmup', '-1'], 'argument --warmup: -1 is '
     'out of range'),
    ('benchmark', ['{tiny}', '--shape', '-64', '128'], 'argument --shape: '
     '-64 is out of range'),
    ('benchmark', ['{tiny}', '--device', 'foo'], "unknown device 'foo'"),
    ('benchmark', ['{tiny}', '{dir}'], 'argument checkpoint: {dir} is a '
     'folder'),
    ('benchmark', ['{tiny}', '{cls}', '--device', 'cpu', '--shape', '64',
                   '64', '--repeat', '1', '--warmup', '0'],
     "the checkpoint holds an ImageNet classifier's weights"),
    ('benchmark', ['--from-json', '{text}'], 'is not a benchmark JSON'),
    ('benchmark_train', ['{tiny}', '--iters', '0'], 'argument --iters: 0 is '
     'out of range'),
    ('benchmark_train', ['{tiny}', '--num-workers', '-1'], 'argument '
     '--num-workers: -1 is out of range'),
    ('benchmark_train', ['--from-json', '{text}'],
     'is not a training benchmark JSON'),
    ('benchmark_video', ['{tiny}', '--frames', '0'], 'argument --frames: 0 '
     'is out of range'),
    ('benchmark_video', ['{tiny}', '--device', 'foo'], "unknown device 'foo'"),
]


@pytest.mark.parametrize('name, args, expected', BAD_ARGUMENTS, ids=[
    re.sub('[{}]', '', f'{name.split("/")[-1]}-{"-".join(args[1:] or args)}')
    for name, args, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_one_line_errors(name, args, expected, files,
                                           tmp_path):
    result = run_tool(tool(name), *[arg.format(**files) for arg in args],
                      setup=lambda: os.chdir(tmp_path))
    assert expected.format(**files) in usage_error(result)
    assert os.listdir(tmp_path) == []  # nothing written


def test_show_without_a_display_is_refused(files, tmp_path):
    def headless():
        os.environ.pop('DISPLAY', None)
        os.environ.pop('WAYLAND_DISPLAY', None)
    result = run_tool(tool('test'), TINY_CONFIG, files['seg'], '--show',
                      '--work-dir', tmp_path, setup=headless)
    assert '--show needs a display' in usage_error(result)


@pytest.fixture
def unreadable(tmp_path):
    """A config and a checkpoint without read permission, in a folder an
    unprivileged user can enter (pytest's own tmp folders are private)."""
    folder = tempfile.mkdtemp()
    os.chmod(folder, 0o755)
    paths = []
    for name, source in (('config.py', TINY_CONFIG), ('model.pth', None)):
        path = os.path.join(folder, name)
        with open(path, 'wb') as f:
            f.write(open(source, 'rb').read() if source else b'weights')
        os.chmod(path, 0)
        paths.append(path)
    yield paths
    shutil.rmtree(folder)


def _without_root():
    """In the forked child: root reads any file, so become nobody."""
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)


@pytest.mark.parametrize('which', ['config', 'checkpoint'])
def test_unreadable_files_are_refused(which, unreadable):
    config, checkpoint = unreadable
    result = run_tool(tool('test'),
                      config if which == 'config' else TINY_CONFIG,
                      checkpoint, setup=_without_root)
    path = config if which == 'config' else checkpoint
    assert (f'argument {which}: {path} cannot be read (no read permission)'
            in usage_error(result))
    assert not os.stat(path).st_mode & stat.S_IRUSR


def test_an_unreadable_image_is_named_not_a_bytesio(files):
    with pytest.raises(ImageReadError, match=r'cannot read image .*text.txt: '
                       r'it is no image Pillow decodes'):
        LoadCheckedImageFromFile().transform(
            dict(img_path=files['text']))
