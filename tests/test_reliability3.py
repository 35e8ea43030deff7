"""Reliability items of issue 23, each reproduced as the user met it: data
configs that ran code or exploded, YAML/JSON copies of a config that
crashed, writes through symlinks, downloads that hung or were mixed up,
non-finite weights, images that took all memory, outputs that overwrote
each other."""
import fcntl
import json
import os
import random
import re
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
import yaml
from forked import run_tool
from helpers import (REPO_ROOT, TINY_CONFIG, citymini_root, data_options,
                     one_error_line, random_tiny_checkpoint, run_logs, tool)
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from repvgg_seg.apis import inference_model, init_segmentor
from repvgg_seg.classification.predict import classify_images
from repvgg_seg.compat import CheckpointError
from repvgg_seg.datasets import prepare_cityscapes
from repvgg_seg.datasets.check import check_sample
from repvgg_seg.datasets.cityscapes_prep import CityscapesPrepError
from repvgg_seg.deploy import SegPredictor, as_bgr_image
from repvgg_seg.models import build_model
from repvgg_seg.utils.config import read_config
from repvgg_seg.utils.errors import ConfigError, InvalidArgument
from repvgg_seg.utils import files
from repvgg_seg.utils.files import FolderInUse, UnsafeFile, folder_lock
from repvgg_seg.utils.images import ImageTooLarge



@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 2, 2)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    return random_tiny_checkpoint(tmp_path_factory.mktemp('tiny'))


# 1. A YAML or JSON config runs no code: no .py base, no custom_imports -----

MARKER_CODE = "open({marker!r}, 'w').close()\nx = 1\n"


def write_chain(folder, top):
    """``top`` (a.yaml, b.json or c.py) reaches ``evil.py`` through YAML
    and JSON bases: c.py -> b.json -> a.yaml -> evil.py."""
    marker = folder / 'MARKER'
    (folder / 'evil.py').write_text(MARKER_CODE.format(marker=str(marker)))
    (folder / 'a.yaml').write_text('_base_: [evil.py]\ny: 1\n')
    (folder / 'b.json').write_text('{"_base_": "a.yaml", "z": 2}')
    (folder / 'c.py').write_text("_base_ = ['b.json']\n")
    return folder / top, marker


@pytest.mark.parametrize('top', ['a.yaml', 'b.json', 'c.py'])
@pytest.mark.parametrize('name, args', [
    ('train', []), ('test', ['ckpt.pth']), ('fuse', ['ckpt.pth', 'f.pth']),
    ('check_dataset', []), ('benchmark', [])])
def test_data_config_cannot_run_a_py_base(top, name, args, tmp_path):
    config, marker = write_chain(tmp_path, top)
    (tmp_path / 'ckpt.pth').write_bytes(b'not read: the config comes first')
    result = run_tool(tool(name), config, *(tmp_path / a for a in args))
    assert re.search(r'a.yaml is a data config .*_base_ names .*evil.py, '
                     r'which is Python code', one_error_line(result))
    assert not marker.exists()


def test_data_config_py_base_through_a_substitution(tmp_path):
    """The check sees the base mmengine resolves, after ``{{...}}``."""
    config, marker = write_chain(tmp_path, 'a.yaml')
    config.write_text("_base_: ['{{ fileDirname }}/evil.py']\n")
    with pytest.raises(ConfigError, match='which is Python code'):
        read_config(config)
    assert not marker.exists()


def test_image_demo_refuses_a_py_base(tmp_path):
    config, marker = write_chain(tmp_path, 'b.json')
    cv2.imwrite(str(tmp_path / 'x.png'), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'ckpt.pth').write_bytes(b'not read: the config comes first')
    result = run_tool(os.path.join(REPO_ROOT, 'demo', 'image_demo.py'),
                      tmp_path / 'x.png', config, tmp_path / 'ckpt.pth')
    assert 'which is Python code' in one_error_line(result)
    assert not marker.exists()


def plant_module(folder, monkeypatch):
    """An importable module (a name of its own per test, as an imported
    module stays imported) that creates a marker file; its name and the
    marker."""
    name = f'planted_{folder.name}'
    marker = folder / 'MARKER'
    (folder / f'{name}.py').write_text(MARKER_CODE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(folder))
    return name, marker


@pytest.mark.parametrize('suffix, text', [
    ('.yaml', 'custom_imports: {{imports: [{module}]}}\n'),
    ('.json', '{{"custom_imports": {{"imports": "{module}"}}}}'),
])
def test_data_config_cannot_import_modules(suffix, text, tmp_path,
                                           monkeypatch):
    module, marker = plant_module(tmp_path, monkeypatch)
    config = tmp_path / f'c{suffix}'
    config.write_text(text.format(module=module))
    (tmp_path / 'child.yml').write_text(f'_base_: [c{suffix}]\n')
    for path in (config, tmp_path / 'child.yml'):
        with pytest.raises(ConfigError, match=rf"custom_imports names "
                           rf"\['{module}'\]: a data config runs no code"):
            read_config(path)
    assert not marker.exists()
    # the plugin itself, which the project's configs import, is allowed
    config.write_text(text.format(module='repvgg_seg'))
    assert read_config(config).custom_imports.imports in (
        ['repvgg_seg'], 'repvgg_seg')


@pytest.mark.parametrize('kind', ['os.system', 'mmengine.dump',
                                  'subprocess.Popen', 'antigravity.X'])
def test_data_config_cannot_call_a_dotted_name(kind, tmp_path):
    """mmengine imports and calls a ``type`` no registry knows."""
    marker = tmp_path / 'MARKER'
    (tmp_path / 'c.yaml').write_text(
        f'model: {{type: {kind}, command: touch {marker}}}\n')
    result = run_tool(tool('train'), tmp_path / 'c.yaml', '--work-dir',
                      tmp_path / 'work')
    assert re.search(rf"names type '{kind}', which is no registered class",
                     one_error_line(result))
    assert not marker.exists()


def test_data_config_names_registered_classes(tmp_path):
    (tmp_path / 'c.json').write_text(json.dumps(dict(
        model=dict(type='mmseg.EncoderDecoder', backbone=dict(
            type='mmseg.RepVGG')), optim=dict(type='mmengine.OptimWrapper'))))
    assert read_config(tmp_path / 'c.json').model.backbone.type == \
        'mmseg.RepVGG'


def test_py_config_stays_code(tmp_path, monkeypatch):
    module, marker = plant_module(tmp_path, monkeypatch)
    (tmp_path / 'c.py').write_text(
        f"custom_imports = dict(imports=['{module}'])\n")
    read_config(tmp_path / 'c.py')
    assert marker.exists()


# 2. YAML aliases cannot expand without bound ("billion laughs") ------------

def laughs(levels):
    lines = ['l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]']
    lines += [f'l{i}: &l{i} [{", ".join([f"*l{i - 1}"] * 10)}]'
              for i in range(1, levels)]
    return '\n'.join(lines) + '\n'


def test_billion_laughs_is_refused(tmp_path):
    config = tmp_path / 'laughs.yaml'
    config.write_text(laughs(9))  # 10**9 values once expanded
    (tmp_path / 'ckpt.pth').write_bytes(b'not read: the config comes first')
    result = run_tool(tool('test'), config, tmp_path / 'ckpt.pth',
                      timeout=60)
    assert re.search(r'expands through its aliases .* to more than 100000 '
                     r'values', one_error_line(result))


def test_few_aliases_still_read(tmp_path):
    config = tmp_path / 'ok.yaml'
    config.write_text(laughs(3) + 'norm: &norm {type: BN}\n'
                      'a: {norm_cfg: *norm}\nb: {norm_cfg: *norm}\n')
    cfg = read_config(config)
    assert len(cfg.l2) == 10 and cfg.b.norm_cfg.type == 'BN'


def test_self_referring_alias_is_refused(tmp_path):
    config = tmp_path / 'loop.yaml'
    config.write_text('a: &a [1, *a]\n')
    with pytest.raises(ConfigError, match='cannot contain itself'):
        read_config(config)


# 3. YAML and JSON copies of a config train and test as the .py -------------

def as_lists(node):
    if isinstance(node, dict):
        return {key: as_lists(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [as_lists(value) for value in node]
    return node


@pytest.fixture(scope='module')
def config_copies(tmp_path_factory):
    """The tiny config as JSON and YAML (lists), and YAML as mmengine dumps
    it (``!!python/tuple``)."""
    folder = tmp_path_factory.mktemp('copies')
    cfg = read_config(TINY_CONFIG)
    data = as_lists(cfg.to_dict())
    (folder / 'tiny.json').write_text(json.dumps(data))
    (folder / 'tiny.yaml').write_text(yaml.safe_dump(data))
    cfg.dump(str(folder / 'dumped.yaml'))
    return {name: str(folder / name)
            for name in ('tiny.json', 'tiny.yaml', 'dumped.yaml')}


@pytest.mark.parametrize('name', ['tiny.json', 'tiny.yaml', 'dumped.yaml'])
def test_config_copy_reads_as_the_py(name, config_copies, data_root):
    init_default_scope('mmseg')
    original, copy = read_config(TINY_CONFIG), read_config(config_copies[name])
    assert as_lists(copy.to_dict()) == as_lists(original.to_dict())
    image = next((data_root / 'leftImg8bit' / 'train').rglob('*.png'))
    sample = dict(img_path=str(image), seg_map_path=str(image).replace(
        'leftImg8bit', 'gtFine').replace('.png', '_labelTrainIds.png'),
        seg_fields=[], reduce_zero_label=False)
    for pipeline in ('train_pipeline', 'test_pipeline'):
        outputs = []
        for cfg in (original, copy):
            np.random.seed(0)
            random.seed(0)
            outputs.append(Compose(cfg[pipeline])(dict(sample)))
        assert torch.equal(outputs[0]['inputs'], outputs[1]['inputs'])


@pytest.fixture(scope='module')
def py_test_metrics(data_root, tiny_checkpoint, tmp_path_factory):
    return tool_metrics(TINY_CONFIG, data_root, tiny_checkpoint,
                        tmp_path_factory.mktemp('py'))


def tool_metrics(config, data_root, checkpoint, work_dir):
    result = run_tool(tool('test'), config, checkpoint, '--work-dir',
                      work_dir, *data_options(data_root, 'test'))
    assert result.returncode == 0, result.stderr
    return re.search(r'Iter\(test\) .*(aAcc.*mAcc: \S+)',
                     run_logs(work_dir)).group(1)


@pytest.mark.parametrize('name', ['tiny.json', 'tiny.yaml', 'dumped.yaml'])
def test_config_copy_tests_as_the_py(name, config_copies, data_root,
                                     tiny_checkpoint, py_test_metrics,
                                     tmp_path):
    assert tool_metrics(config_copies[name], data_root, tiny_checkpoint,
                        tmp_path) == py_test_metrics


def test_json_copy_trains(config_copies, data_root, tmp_path):
    result = run_tool(tool('train'), config_copies['tiny.json'],
                      '--work-dir', tmp_path,
                      *data_options(data_root, 'train', 'val'),
                      'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
                      'default_hooks.checkpoint.interval=1')
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'iter_1.pth').is_file()


# 4. No write through a link planted under a name the package can guess ----

def test_lock_symlink_is_refused_and_its_target_kept(data_root, tmp_path):
    victim = tmp_path / 'thesis.tex'
    victim.write_text('years of work')
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / '.lock').symlink_to(victim)
    result = run_tool(tool('train'), TINY_CONFIG, '--work-dir', work_dir,
                      *data_options(data_root, 'train', 'val'))
    assert re.search(r'work/.lock is a symbolic link: refusing to write '
                     r'through it', one_error_line(result))
    assert victim.read_text() == 'years of work'


def test_lock_hard_link_is_refused(tmp_path):
    victim = tmp_path / 'notes.txt'
    victim.write_text('kept')
    (tmp_path / 'work').mkdir()
    os.link(victim, tmp_path / 'work' / '.lock')
    with pytest.raises(UnsafeFile, match='hard link or not a plain file'):
        with folder_lock(str(tmp_path / 'work'), 'training'):
            pass
    assert victim.read_text() == 'kept'


def test_lock_file_is_removed_when_the_block_ends(tmp_path):
    work_dir = tmp_path / 'work'
    with folder_lock(str(work_dir), 'training'):
        assert (work_dir / '.lock').read_text() == f'pid {os.getpid()}\n'
    assert os.listdir(work_dir) == []
    with pytest.raises(RuntimeError):
        with folder_lock(str(work_dir), 'training'):
            raise RuntimeError('training failed')
    assert os.listdir(work_dir) == []


def test_lock_removed_under_a_waiting_process_is_not_shared(tmp_path,
                                                           monkeypatch):
    """A process that opened the lock file just before its holder removed
    it, and another took the new one, must not lock the removed file."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    opened = files._open_own_file
    held = []

    def open_then_lose_the_race(path):
        lock = opened(path)
        if not held:  # the holder ends (removes it), a third run locks anew
            os.remove(path)
            held.append(opened(path))
            fcntl.flock(held[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
            held[0].write('pid 4242\n')
            held[0].flush()
        return lock

    monkeypatch.setattr(files, '_open_own_file', open_then_lose_the_race)
    with pytest.raises(FolderInUse, match=r'in use by another training '
                       r'\(pid 4242\)'):
        with folder_lock(str(work_dir), 'training'):
            pass
    held[0].close()


def test_training_leaves_no_lock_file(data_root, tmp_path):
    result = run_tool(tool('train'), TINY_CONFIG, '--work-dir', tmp_path,
                      *data_options(data_root, 'train', 'val'),
                      'train_cfg.max_iters=1', 'train_cfg.val_begin=1000')
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / '.lock').exists()


def plant_links(folder, victim, names):
    for name in names:
        os.symlink(victim, folder / name)


def test_fuse_does_not_write_through_guessable_temp_names(tiny_checkpoint,
                                                         tmp_path):
    from repvgg_seg.deploy import fuse_checkpoint
    victim = tmp_path / 'victim'
    victim.write_text('kept')
    out = tmp_path / 'fused.pth'
    plant_links(tmp_path, victim, [  # the names atomic_output used
        f'.tmp-fused.{os.getpid()}.pth', f'.tmp-fused.{os.getpid()}.py'])
    fuse_checkpoint(TINY_CONFIG, tiny_checkpoint, str(out))
    assert victim.read_text() == 'kept'
    assert torch.load(out, weights_only=True)['state_dict']


def test_test_out_staging_folder_link_is_refused(data_root, tiny_checkpoint,
                                                 tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()

    def plant():  # in the child: its pid names the staging folder
        os.symlink(elsewhere, tmp_path / f'.tmp-preds.{os.getpid()}')

    result = run_tool(tool('test'), TINY_CONFIG, tiny_checkpoint, '--out',
                      tmp_path / 'preds', '--work-dir', tmp_path / 'work',
                      *data_options(data_root, 'test'), setup=plant)
    assert 'is a symbolic link or no folder: refusing to write into it' in \
        one_error_line(result)
    assert os.listdir(elsewhere) == []


# 5. Images: a pixel limit read from the header, 16-bit arrays, names -------

def png_declaring(path, width, height):
    """A PNG of a few bytes whose header declares ``width`` x ``height``
    grey pixels (no pixel data follows: nothing may try to decode it)."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(
        b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
        + chunk(b'IEND', b''))
    return path


@pytest.fixture(scope='module')
def tiny_model(tiny_checkpoint):
    return init_segmentor(TINY_CONFIG, tiny_checkpoint)


LIMIT_MESSAGE = r'is 12000x12000 \(WxH\), 144000000 pixels, more than the ' \
    r'limit of 67108864: refusing to decode it'


def test_huge_declared_image_is_refused_by_the_api(tiny_model, tmp_path):
    path = png_declaring(tmp_path / 'bomb.png', 12000, 12000)
    with pytest.raises(ImageTooLarge, match=LIMIT_MESSAGE):
        inference_model(tiny_model, str(path))
    with pytest.raises(ImageTooLarge, match=LIMIT_MESSAGE):
        SegPredictor(tiny_model).predict([path])


def test_huge_declared_image_is_refused_by_the_image_demo(tiny_checkpoint,
                                                         tmp_path):
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    png_declaring(tmp_path / 'in' / 'b.png', 12000, 12000)
    result = run_tool(os.path.join(REPO_ROOT, 'demo', 'image_demo.py'),
                      tmp_path / 'in', TINY_CONFIG, tiny_checkpoint,
                      '--out-dir', tmp_path / 'out')
    assert re.search(LIMIT_MESSAGE, one_error_line(result))
    assert not (tmp_path / 'out').exists()  # checked before the first image


# PIL warns of the declared size while our limit refuses it: the point
@pytest.mark.filterwarnings('ignore::PIL.Image.DecompressionBombWarning')
def test_huge_declared_image_is_a_data_set_problem(tmp_path_factory):
    root = citymini_root(tmp_path_factory, 1, 1, prepare=False)
    image = next((root / 'leftImg8bit' / 'train').rglob('*.png'))
    png_declaring(image, 12000, 12000)
    problems = check_sample((str(image), None, frozenset({0, 255})))
    assert len(problems) == 1 and re.search(LIMIT_MESSAGE, problems[0])
    with pytest.raises(CityscapesPrepError, match=LIMIT_MESSAGE):
        prepare_cityscapes(root, nproc=1)


def test_huge_declared_image_is_refused_by_classify(tmp_path):
    classifier = os.path.join(REPO_ROOT, 'configs', 'imagenet',
                              'repvgg_a0_tinyimagenet.py')
    model = init_segmentor(classifier)
    path = png_declaring(tmp_path / 'bomb.png', 12000, 12000)
    with pytest.raises(ImageTooLarge, match=LIMIT_MESSAGE):
        classify_images(model, [str(path)])


def test_pixel_limit_is_configurable(monkeypatch, tmp_path):
    path = tmp_path / 'small.png'
    cv2.imwrite(str(path), np.zeros((40, 40, 3), np.uint8))
    assert as_bgr_image(str(path)).shape == (40, 40, 3)
    monkeypatch.setenv('REPVGG_SEG_MAX_IMAGE_PIXELS', '1000')
    for image in (str(path), np.zeros((40, 40, 3), np.uint8)):
        with pytest.raises(ImageTooLarge, match='1600 pixels, more than the '
                           'limit of 1000.*REPVGG_SEG_MAX_IMAGE_PIXELS'):
            as_bgr_image(image)
    assert as_bgr_image(np.zeros((30, 30), np.uint8)).shape == (30, 30, 3)
    monkeypatch.setenv('REPVGG_SEG_MAX_IMAGE_PIXELS', 'lots')
    with pytest.raises(InvalidArgument, match='REPVGG_SEG_MAX_IMAGE_PIXELS'):
        as_bgr_image(str(path))


def test_16_bit_arrays_are_scaled_as_16_bit_files(tiny_model, tmp_path):
    image = np.random.default_rng(0).integers(0, 65536, (48, 64, 3),
                                              dtype=np.uint16)
    path = str(tmp_path / 'deep.png')
    cv2.imwrite(path, image)
    from_file = as_bgr_image(path)
    assert from_file.dtype == np.uint8
    assert np.array_equal(as_bgr_image(image), from_file)
    assert np.array_equal(as_bgr_image(image[..., 0]),
                          np.repeat(from_file[..., :1], 3, axis=2))
    assert torch.equal(inference_model(tiny_model, image).seg_logits.data,
                       inference_model(tiny_model, path).seg_logits.data)


def test_meta_device_is_refused(tiny_checkpoint):
    with pytest.raises(InvalidArgument, match="device 'meta' holds no "
                       'weights'):
        init_segmentor(TINY_CONFIG, tiny_checkpoint, device='meta')
    model = init_segmentor(TINY_CONFIG, tiny_checkpoint).to('meta')
    with pytest.raises(InvalidArgument, match='on the meta device'):
        inference_model(model, np.zeros((8, 8, 3), np.uint8))


def test_image_demo_writes_one_overlay_per_image_of_a_stem(tiny_checkpoint,
                                                          tmp_path):
    (tmp_path / 'in').mkdir()
    for name in ('a.jpg', 'a.png', 'b.png'):
        cv2.imwrite(str(tmp_path / 'in' / name),
                    np.full((8, 8, 3), 100, np.uint8))
    result = run_tool(os.path.join(REPO_ROOT, 'demo', 'image_demo.py'),
                      tmp_path / 'in', TINY_CONFIG, tiny_checkpoint,
                      '--out-dir', tmp_path / 'out')
    assert result.returncode == 0, result.stderr
    assert 'wrote 3 overlay(s)' in result.stdout
    assert sorted(os.listdir(tmp_path / 'out')) == [
        'a.jpg.png', 'a.png.png', 'b.png']


# 6. Weights with NaN or +-inf are refused on every load path ---------------

@pytest.fixture(scope='module', params=[float('inf'), float('-inf')],
                ids=['inf', '-inf'])
def infinite_checkpoint(request, tmp_path_factory):
    """A tiny segmentor with one infinite weight in its auxiliary head,
    which tools/fuse.py's check (the main head only) never runs."""
    model = build_model(read_config(TINY_CONFIG))
    with torch.no_grad():
        model.auxiliary_head.conv_seg.weight[0, 0] = request.param
    path = tmp_path_factory.mktemp('inf') / 'inf.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


INFINITE_MESSAGE = r'refusing checkpoint .*inf.pth: state_dict.' \
    r'auxiliary_head.conv_seg.weight has 1 NaN or infinite values'


def test_api_refuses_infinite_weights(infinite_checkpoint):
    with pytest.raises(CheckpointError, match=INFINITE_MESSAGE):
        init_segmentor(TINY_CONFIG, str(infinite_checkpoint))


@pytest.mark.parametrize('name, args', [
    ('test', ['{config}', '{ckpt}']),
    ('fuse', ['{config}', '{ckpt}', '{out}/fused.pth']),
    ('convert_checkpoint', ['{ckpt}', '{out}/converted.pth']),
    ('extract_backbone', ['{ckpt}', '{out}/backbone.pth']),
    ('train', ['{config}', '--work-dir', '{out}', '--cfg-options',
               'load_from={ckpt}']),
    ('train', ['{pretrained}', '--work-dir', '{out}']),
], ids=['test', 'fuse', 'convert', 'extract', 'load_from', 'pretrained'])
def test_tools_refuse_infinite_weights(name, args, infinite_checkpoint,
                                       data_root, tmp_path):
    out = tmp_path / 'out'
    pretrained = tmp_path / 'pretrained.py'  # the backbone's init_cfg
    pretrained.write_text(
        f'_base_ = [{TINY_CONFIG!r}]\nmodel = dict(backbone=dict(init_cfg='
        f'dict(_delete_=True, type="Pretrained", prefix="backbone.", '
        f'checkpoint={str(infinite_checkpoint)!r})))\n')
    args = [a.format(config=TINY_CONFIG, ckpt=infinite_checkpoint, out=out,
                     pretrained=pretrained) for a in args]
    if name in ('test', 'train'):
        options = data_options(data_root, 'train', 'val', 'test')
        args += options[1:] if '--cfg-options' in args else options
    result = run_tool(tool(name), *args)
    assert re.search(INFINITE_MESSAGE, one_error_line(result))
    assert not [p for p in tmp_path.rglob('*.pth')]


def test_resume_refuses_infinite_weights(infinite_checkpoint, data_root,
                                         tmp_path):
    (tmp_path / 'iter_2.pth').write_bytes(infinite_checkpoint.read_bytes())
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    result = run_tool(tool('train'), TINY_CONFIG, '--work-dir', tmp_path,
                      '--resume', *data_options(data_root, 'train', 'val'))
    assert re.search(INFINITE_MESSAGE.replace('inf.pth', 'iter_2.pth'),
                     one_error_line(result))
