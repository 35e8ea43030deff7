"""Garbage in: random bytes as an image (inference API, data set check),
as a label map, as a video (video demo); absurd image shapes and NaNs to
the inference API. Each case runs in a forked child with a time limit and
must end in a clear error or a defined result: no hang, no crash.
"""
import os
import re
import shutil

import numpy as np
import pytest
from forked import run_forked, run_tool
from helpers import REPO_ROOT, citymini_root

from repvgg_seg.apis import inference_segmentor, init_segmentor
from repvgg_seg.datasets import build_datasets, check_dataset
from repvgg_seg.utils.config import read_config as load_config

CONFIG = os.path.join(REPO_ROOT, 'tests', 'configs',
                      'pspnet_repvgg_tiny_citymini.py')
TIMEOUT = 60
#: Random files: (seed, a real format's magic bytes to get past sniffing).
BLOBS = [(0, b''), (1, b'\x89PNG\r\n\x1a\n'), (2, b'\xff\xd8\xff\xe0'),
         (3, b'\x00\x00\x00\x18ftypmp42')]


def random_bytes(seed, prefix=b'', size=4096):
    return prefix + np.random.default_rng(seed).bytes(size)


def outcome(fn):
    """``'ok: <result>'`` or ``'<Error>: <message>'`` of ``fn()`` run in a
    forked child; a crash or a hang fails the test."""
    def target():
        try:
            print(f'ok: {fn()}')
        except Exception as exc:  # noqa: B902 (what we are looking at)
            print(f'{type(exc).__name__}: {exc}')

    result = run_forked(target, TIMEOUT)
    assert result.returncode == 0, f'the process crashed: {result}'
    return result.stdout.strip()


@pytest.fixture(scope='module')
def model():
    return init_segmentor(CONFIG)


@pytest.fixture(scope='module')
def clean_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 2, 1)


@pytest.mark.parametrize('seed, prefix', BLOBS)
def test_random_bytes_as_image_to_the_api(seed, prefix, model, tmp_path):
    path = tmp_path / 'image.png'
    path.write_bytes(random_bytes(seed, prefix))
    result = outcome(lambda: inference_segmentor(model, str(path)))
    assert result == f'InvalidArgument: cannot decode image {path}'


@pytest.mark.parametrize('shape, expected', [
    ((1, 1, 3), 'ok: (1, 1)'),
    ((3, 5), 'ok: (3, 5)'),
    ((16, 40000, 3), 'InvalidArgument: the test pipeline cannot preprocess a '
     '16x40000 image'),
    ((40000, 16, 3), 'InvalidArgument: the test pipeline cannot preprocess a '
     '40000x16 image'),
    ((0, 7, 3), 'InvalidArgument: expected an HxW, HxWx1, HxWx3 or HxWx4 image'),
    ((8, 8, 2), 'InvalidArgument: expected an HxW, HxWx1, HxWx3 or HxWx4 image'),
])
def test_absurd_shapes_to_the_api(shape, expected, model):
    image = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    result = outcome(lambda: tuple(
        inference_segmentor(model, image).pred_sem_seg.shape))
    assert result.startswith(expected), result


@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_to_the_api(value, model):
    image = np.full((32, 64, 3), 100, np.float32)
    image[3, 5, 1] = value
    result = outcome(lambda: inference_segmentor(model, image))
    assert result == 'InvalidArgument: the image has NaN or infinite values'


@pytest.mark.parametrize('kind', ['image', 'label'])
@pytest.mark.parametrize('seed, prefix', BLOBS[:3])
def test_random_bytes_in_the_data_set(kind, seed, prefix, clean_root,
                                      tmp_path):
    root = shutil.copytree(clean_root, tmp_path / 'citymini')
    folder, suffix = {
        'image': ('leftImg8bit', '_leftImg8bit.png'),
        'label': ('gtFine', '_gtFine_labelTrainIds.png')}[kind]
    broken = sorted((root / folder / 'train').glob(f'*/*{suffix}'))[0]
    broken.write_bytes(random_bytes(seed, prefix))
    cfg = load_config(CONFIG)
    cfg.train_dataloader.dataset.data_root = str(root)
    result = outcome(lambda: '\n'.join(check_dataset(
        build_datasets(cfg, ['train'])['train'], nproc=1, progress=False)))
    assert result.startswith(f'ok: {broken}: unreadable {kind}'), result
    assert len(result.splitlines()) == 1


def _unread_checkpoint(folder):
    """A checkpoint argument that passes the tool's path check; the video
    is refused before it is read."""
    path = folder / 'model.pth'
    path.write_bytes(b'never read')
    return path


@pytest.mark.parametrize('seed, prefix', BLOBS)
def test_random_bytes_as_video(seed, prefix, tmp_path):
    video = tmp_path / 'drive.mp4'
    video.write_bytes(random_bytes(seed, prefix, size=65536))
    result = run_tool(os.path.join(REPO_ROOT, 'tools', 'video_demo.py'),
                      video, CONFIG, _unread_checkpoint(tmp_path), '--out',
                      tmp_path / 'o.mp4', timeout=TIMEOUT)
    assert result.returncode > 0 and 'Traceback' not in result.stderr
    assert re.match(f'error: cannot (open video|decode any frame of) '
                    f'{video}', result.stderr.strip().splitlines()[-1])
    assert not (tmp_path / 'o.mp4').exists()


def test_random_bytes_as_video_frames(tmp_path):
    frames = tmp_path / 'frames'
    frames.mkdir()
    for index, (seed, prefix) in enumerate(BLOBS[:2]):
        (frames / f'{index:04d}.png').write_bytes(random_bytes(seed, prefix))
    result = run_tool(os.path.join(REPO_ROOT, 'tools', 'video_demo.py'),
                      frames, CONFIG, _unread_checkpoint(tmp_path),
                      timeout=TIMEOUT)
    assert result.returncode > 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('error: ')
