"""Defects found by the red team, each reproduced as the attack or accident
it was: code in a YAML config, escape sequences from a file, outputs that
overwrite inputs, concurrent runs, NaN weights passing checks, partial
outputs after a failure, temporary files left behind."""
import errno
import hashlib
import os
import re
import shutil
import signal

import numpy as np
import pytest
import torch
from forked import run_forked, run_tool
from helpers import (REPO_ROOT, TINY_CONFIG, citymini_root, data_options,
                     one_error_line, random_tiny_checkpoint, tool)
from mmengine.config import Config
from PIL import Image

from repvgg_seg.apis import export_onnx, init_segmentor
from repvgg_seg.compat import CheckpointError
from repvgg_seg.datasets import citymini
from repvgg_seg.deploy import SegPredictor, fuse_checkpoint
from repvgg_seg.deploy.predictor import as_bgr_image
from repvgg_seg.models import build_model
from repvgg_seg.utils.cli import cli_main, run_cli
from repvgg_seg.utils.config import read_config
from repvgg_seg.utils.errors import ConfigError, InvalidArgument, UserError
from repvgg_seg.utils.files import atomic_torch_save, folder_lock
from repvgg_seg.utils.text import printable

A0_CONFIG = os.path.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a0_citymini.py')


# 1. A YAML config is data: reading it must not run code --------------------

@pytest.mark.parametrize('name', ['evil.yaml', 'child.yml', 'child.py'])
def test_yaml_config_cannot_run_code(name, tmp_path):
    marker = tmp_path / 'MARKER'
    (tmp_path / 'evil.yaml').write_text(
        f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    (tmp_path / 'child.yml').write_text('_base_: [evil.yaml]\ny: 1\n')
    (tmp_path / 'child.py').write_text("_base_ = ['evil.yaml']\n")
    (tmp_path / 'ckpt.pth').write_bytes(b'never read')
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



def test_convert_prints_checkpoint_keys_printably(tmp_path):
    model = build_model(read_config(A0_CONFIG))
    state = {f'decode_head.{EVIL}': torch.zeros(1), **model.state_dict()}
    torch.save(dict(state_dict=state), tmp_path / 'evil.pth')
    result = run_tool(tool('convert_checkpoint'), tmp_path / 'evil.pth',
                      tmp_path / 'out.pth', '--arch', 'A0')
    assert result.returncode == 0, result.stderr
    assert '\x1b' not in result.stdout and '\u202e' not in result.stdout
    assert 'decode_head.\\x1b[2J\\x1b[31mEVIL\\u202e' in result.stdout



def test_check_dataset_prints_file_names_printably(data_root, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(data_root, root)
    image = next((root / 'leftImg8bit' / 'val').glob('*/*.png'))
    shutil.copy(image, image.with_name('\x1b[2Jevil_leftImg8bit.png'))
    result = run_tool(tool('check_dataset'), TINY_CONFIG, '--splits', 'val',
                      '--nproc', 1, '--cfg-options',
                      f'val_dataloader.dataset.data_root={root}')
    assert result.returncode == 1, result
    assert '\x1b' not in result.stdout
    assert '\\x1b[2Jevil' in result.stdout


# 7. NaN weights are refused by fusing and ONNX export ---------------------

@pytest.fixture(scope='module')
def nan_checkpoint(tmp_path_factory):
    """A tiny segmentor whose weights went NaN (a diverged training)."""
    model = build_model(read_config(TINY_CONFIG))
    with torch.no_grad():
        model.decode_head.conv_seg.weight[0, 0] = float('nan')
    path = tmp_path_factory.mktemp('nan') / 'nan.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    return str(path)


def test_fuse_refuses_nan_weights(nan_checkpoint, tmp_path):
    out = tmp_path / 'fused.pth'
    with pytest.raises(CheckpointError, match='NaN or infinite values'):
        fuse_checkpoint(TINY_CONFIG, nan_checkpoint, str(out))
    assert not os.listdir(tmp_path)


def test_onnx_export_refuses_nan_weights(nan_checkpoint, tmp_path):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'nan.onnx'
    with pytest.raises(CheckpointError, match='NaN or infinite values'):
        export_onnx(TINY_CONFIG, nan_checkpoint, str(out), shape=(64, 128))
    assert not os.listdir(tmp_path)


# 10. SegPredictor.predict of one array, float64 pixels beyond float32 -------

@pytest.fixture(scope='module')
def tiny_model():
    return init_segmentor(TINY_CONFIG)


@pytest.mark.parametrize('images', [
    np.zeros((64, 3, 3), np.uint8), np.zeros((64, 32), np.uint8),
    'image.png'], ids=['HxWxC', 'HxW', 'path'])
def test_predict_refuses_one_image_not_in_a_list(tiny_model, images):
    with pytest.raises(InvalidArgument, match=r'for one image pass \[image\]'):
        SegPredictor(tiny_model).predict(images)


def test_predict_takes_a_batch_array(tiny_model):
    batch = np.random.default_rng(0).integers(0, 256, (2, 32, 64, 3),
                                              dtype=np.uint8)
    labels = SegPredictor(tiny_model).predict(batch)
    assert len(labels) == 2 and labels[0].shape == (32, 64)


def test_image_values_beyond_float32_are_refused():
    image = np.zeros((8, 8, 3), np.float64)
    image[0, 0, 0] = 1e308
    with pytest.raises(InvalidArgument, match='beyond float32'):
        as_bgr_image(image)
    image[0, 0, 0] = 255.0
    assert as_bgr_image(image).dtype == np.float32


# 4. tools/test.py --out must not write into the test data ------------------

@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 2, 2)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    return random_tiny_checkpoint(tmp_path_factory.mktemp('tiny'))


def digests(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('where', ['leftImg8bit/val/synthville',
                                   'leftImg8bit/val', 'gtFine/val', '.'])
def test_test_out_refuses_the_test_data(where, data_root, tiny_checkpoint):
    before = digests(data_root)
    result = run_tool(tool('test'), TINY_CONFIG, tiny_checkpoint, '--out',
                      data_root / where, *data_options(data_root, 'test'))
    assert re.search(r'--out .* is in or holds the test data',
                     one_error_line(result))
    assert digests(data_root) == before


# 12. A failed tools/test.py --out leaves no empty or partial PNG ------------

def disk_full_at_second_png():
    """PIL writes the first PNG, then fails on the second with an empty
    file left (what a full disk does)."""
    from PIL import Image
    calls = []

    def save(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 2:
            open(fp, 'wb').close()
            raise OSError(errno.ENOSPC, 'No space left on device', fp)
        return original(self, fp, *args, **kwargs)

    original, Image.Image.save = Image.Image.save, save


def run_test_with_out(data_root, checkpoint, tmp_path, setup=None):
    return run_tool(tool('test'), TINY_CONFIG, checkpoint, '--out',
                    tmp_path / 'preds', '--work-dir', tmp_path / 'work',
                    *data_options(data_root, 'test'), setup=setup)


def test_test_out_failure_leaves_no_partial_png(data_root, tiny_checkpoint,
                                                tmp_path):
    (tmp_path / 'preds').mkdir()
    (tmp_path / 'preds' / 'earlier.png').write_bytes(b'kept')
    result = run_test_with_out(data_root, tiny_checkpoint, tmp_path,
                               disk_full_at_second_png)
    assert 'No space left' in one_error_line(result)
    assert os.listdir(tmp_path / 'preds') == ['earlier.png']
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.tmp-')]


def test_test_out_success_moves_every_png(data_root, tiny_checkpoint,
                                          tmp_path):
    result = run_test_with_out(data_root, tiny_checkpoint, tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(tmp_path / 'preds'))
    assert len(names) == 2 and all(n.endswith('_leftImg8bit.png')
                                   for n in names)
    for name in names:
        with Image.open(tmp_path / 'preds' / name) as label_map:
            assert label_map.size == (128, 64)
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.tmp-')]


# 11. tools/fuse.py writes the checkpoint and its config, or neither --------

@pytest.mark.parametrize('failure', ['dump', 'read-only'])
def test_fuse_writes_both_outputs_or_neither(failure, tiny_checkpoint,
                                             tmp_path, monkeypatch):
    out_config = tmp_path / 'configs' / 'fused.py'
    out_config.parent.mkdir()
    if failure == 'dump':
        def dump(self, path):
            open(path, 'w').close()
            raise OSError(errno.ENOSPC, 'No space left on device', path)
        monkeypatch.setattr(Config, 'dump', dump)
    else:
        out_config.parent.chmod(0o500)
        if os.access(out_config.parent, os.W_OK):
            pytest.skip('running as root: permissions are not enforced')
    try:
        with pytest.raises(OSError):
            fuse_checkpoint(TINY_CONFIG, tiny_checkpoint,
                            str(tmp_path / 'fused.pth'), str(out_config))
    finally:
        out_config.parent.chmod(0o700)
    assert os.listdir(tmp_path) == ['configs']
    assert os.listdir(out_config.parent) == []


# 5. One training per work_dir at a time --------------------------------------

def train_args(work_dir, data_root):
    return [TINY_CONFIG, '--work-dir', work_dir, '--cfg-options',
            'train_cfg.max_iters=1', 'train_cfg.val_begin=1000',
            *(f'{split}_dataloader.dataset.data_root={data_root}'
              for split in ('train', 'val'))]


def test_second_training_in_a_work_dir_is_refused(data_root, tmp_path):
    work_dir = tmp_path / 'work'
    with folder_lock(str(work_dir), 'training'):  # a first training
        result = run_tool(tool('train'), *train_args(work_dir, data_root))
    assert re.search(rf'{work_dir} is in use by another training '
                     rf'\(pid {os.getpid()}\).*--work-dir',
                     one_error_line(result))
    assert os.listdir(work_dir) == []  # the first one removed its lock


# 14. Temporary files of killed saves are removed ----------------------------

def test_training_removes_stale_temp_files(data_root, tmp_path):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / '.lock').write_text('pid 1\n')  # a dead run's lock file
    torch.save({'step': 1}, work_dir / 'old.pth')
    dead_pid = int(open('/proc/sys/kernel/pid_max').read())  # never a pid
    temp_files = {  # name -> (mtime relative to old.pth, stale)
        '.tmp-a1b2c3d4iter_2.pth': (-100, True),  # older than a checkpoint
        f'.tmp-{dead_pid}-a1b2c3d4iter_4.pth': (100, True),  # writer dead
        f'.tmp-{os.getpid()}-a1b2c3d4iter_4.pth': (100, False),  # alive
    }
    saved_at = os.path.getmtime(work_dir / 'old.pth')
    for name, (offset, _) in temp_files.items():
        (work_dir / name).write_bytes(b'partial checkpoint')
        os.utime(work_dir / name, (saved_at + offset, ) * 2)
    result = run_tool(tool('train'), *train_args(work_dir, data_root))
    assert result.returncode == 0, result.stderr
    left = {n for n in os.listdir(work_dir) if n.startswith('.tmp-')}
    assert left == {n for n, (_, stale) in temp_files.items() if not stale}


def test_sigterm_during_a_save_removes_its_temp_file(tmp_path):
    def main():
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGTERM)
        atomic_torch_save({'weights': torch.zeros(8)}, tmp_path / 'ckpt.pth')

    result = run_forked(lambda: run_cli(main))
    assert result.returncode == 128 + signal.SIGTERM, result
    assert result.stderr.strip() == 'terminated'
    assert os.listdir(tmp_path) == []


# 13. An interrupted make_citymini.py neither blocks its re-run nor leaves a
# short video under the requested name ---------------------------------------

def interrupt_at_call(module, name, call):
    """Make ``module.name`` raise KeyboardInterrupt at its ``call``-th call
    (Ctrl-C in the middle of the work)."""
    original, calls = getattr(module, name), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    setattr(module, name, interrupted)


def make_citymini(root, *extra, setup=None):
    return run_tool(tool('make_citymini'), '--out', root, '--num-train', 2,
                    '--num-val', 1, '--height', 64, '--width', 128, *extra,
                    setup=setup)


def test_interrupted_citymini_is_replaced_by_its_rerun(tmp_path):
    root = tmp_path / 'citymini'
    result = make_citymini(root, setup=lambda: interrupt_at_call(
        citymini, '_write_scene', 2))
    assert result.returncode == 130, result
    assert (root / 'leftImg8bit').is_dir() and not (root / 'citymini.json'
                                                    ).exists()
    result = make_citymini(root)
    assert result.returncode == 0, result.stderr
    assert len(list(root.rglob('*_leftImg8bit.png'))) == 3
    assert (root / 'citymini.json').is_file()
    assert not (root / citymini.PARTIAL_MARKER).exists()


def test_interrupted_video_leaves_no_short_file(tmp_path):
    video = tmp_path / 'drive.mp4'
    result = make_citymini(tmp_path / 'citymini', '--video', video,
                           '--frames', 4, setup=lambda: interrupt_at_call(
                               citymini, 'render_scene', 3 + 2))
    assert result.returncode == 130, result
    assert sorted(os.listdir(tmp_path)) == ['citymini']
