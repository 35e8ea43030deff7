"""Broken data sets are refused with one line that names the file: a PNG
with a corrupt body, a link to nothing, a PNG declaring 60000x60000
pixels, an empty split, a line break in a name, NaN polygon coordinates,
a full disk while preparing (no pool traceback after the error)."""
import errno
import json
import os
import re
import shutil
import struct
import zlib

import pytest
from forked import run_tool
from helpers import (REPO_ROOT, TINY_CONFIG, citymini_root, one_error_line,
                     tool)

from repvgg_seg.datasets import prepare_cityscapes




@pytest.fixture(scope='module')
def clean_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 2, 1, prepare=False)


@pytest.fixture
def root(clean_root, tmp_path):
    """A fresh, not yet prepared copy."""
    copy = tmp_path / 'citymini'
    shutil.copytree(clean_root, copy)
    return copy


def val_image(root):
    return next((root / 'leftImg8bit' / 'val').glob('*/*.png'))


def png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack(
        '>I', zlib.crc32(kind + data))


def bomb_png(width=60000, height=60000):
    """A valid-looking PNG header declaring ``width`` x ``height`` pixels."""
    return b'\x89PNG\r\n\x1a\n' + png_chunk(
        b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) + \
        png_chunk(b'IDAT', zlib.compress(b'\0' * 16)) + png_chunk(b'IEND', b'')


def check_tool(root, *args):
    return run_tool(tool('check_dataset'), TINY_CONFIG, *args,
                    '--cfg-options',
                    f'train_dataloader.dataset.data_root={root}',
                    f'val_dataloader.dataset.data_root={root}')


@pytest.mark.parametrize('damage, expected', [
    ('corrupt_body', r'unreadable image'),
    ('dangling_link', r'image is a link to .*nowhere.png, which does not '
     r'exist'),
    ('bomb', r'not a camera image .*exceeds limit'),
])
def test_check_dataset_finds(damage, expected, root):
    prepare_cityscapes(root, nproc=1)
    image = val_image(root)
    if damage == 'corrupt_body':
        data = bytearray(image.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(64)
        image.write_bytes(bytes(data))
    elif damage == 'dangling_link':
        os.symlink(root / 'nowhere.png',
                   image.parent / 'extra_000000_000000_leftImg8bit.png')
    elif damage == 'bomb':
        image.write_bytes(bomb_png())
    result = check_tool(root)
    assert result.returncode == 1, result
    assert re.search(expected, result.stdout), result.stdout


@pytest.mark.parametrize('name', ['train', 'check_dataset'])
def test_an_empty_val_split(name, root, tmp_path):
    prepare_cityscapes(root, nproc=1)
    for path in root.glob('*/val/*/*'):
        path.unlink()
    result = run_tool(tool(name), TINY_CONFIG, '--work-dir',
                      tmp_path / 'work', '--cfg-options',
                      f'train_dataloader.dataset.data_root={root}',
                      f'val_dataloader.dataset.data_root={root}') \
        if name == 'train' else check_tool(root)
    assert re.search(r'leftImg8bit/val holds no samples \(an empty val '
                     r'split\)', one_error_line(result))


def test_check_dataset_without_dataloaders(tmp_path):
    config = tmp_path / 'no_data.py'
    config.write_text(f'_base_ = [{TINY_CONFIG!r}]\ntrain_dataloader = None\n'
                      'val_dataloader = None\n')
    result = run_tool(tool('check_dataset'), config)
    assert re.search(r'no_data.py has no train_dataloader / val_dataloader: '
                     r'nothing to check', one_error_line(result))


def prepare_tool(root, *args, setup=None):
    return run_tool(tool('prepare_cityscapes'), root, *args, setup=setup)


def test_prepare_refuses_bomb(root):
    val_image(root).write_bytes(bomb_png())
    assert re.search(r'leftImg8bit.png: Image size .*exceeds limit.*refusing',
                     one_error_line(prepare_tool(root)))


def test_prepare_refuses_dangling_link(root):
    os.symlink(root / 'nowhere.png', val_image(root).parent /
               'extra_000000_000000_leftImg8bit.png')
    assert re.search(r'extra_000000_000000_leftImg8bit.png: image is a link',
                     one_error_line(prepare_tool(root)))


def test_prepare_refuses_line_break_in_a_name(root):
    image = val_image(root)
    image.rename(image.parent / ('a\nb' + image.name))
    assert re.search(r'has a line break in its name',
                     one_error_line(prepare_tool(root)))


@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_prepare_refuses_non_finite_polygon(value, root):
    path = next((root / 'gtFine' / 'val').glob('*/*_polygons.json'))
    annotation = json.loads(path.read_text())
    annotation['objects'][0]['polygon'][0][0] = value
    path.write_text(json.dumps(annotation))
    assert re.search(r'polygons.json: a polygon of .* has a NaN or infinite '
                     r'coordinate', one_error_line(prepare_tool(root)))


def disk_full():
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.fsync = fsync


@pytest.mark.parametrize('nproc', [1, 2])
def test_prepare_on_a_full_disk(nproc, root):
    result = prepare_tool(root, '--nproc', nproc, setup=disk_full)
    line = one_error_line(result)
    assert re.search(r'cannot write .*_labelTrainIds.png: No space left',
                     line)
    assert 'Pool' not in result.stderr and 'Exception ignored' not in \
        result.stderr, result.stderr
