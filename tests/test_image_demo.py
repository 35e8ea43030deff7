"""MMSeg 1.x API names (old names as aliases, a classifier too) and
demo/image_demo.py: an image or a folder to overlay PNGs, optionally with a
class-colour legend, through the shared inference path."""
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from helpers import REPO_ROOT
from repvgg_seg.apis import (inference_model, inference_segmentor,
                             init_model, init_segmentor)
from repvgg_seg.apis.image_demo import overlay
from repvgg_seg.models import build_model
from repvgg_seg.utils.config import read_config

CONFIG = f'{REPO_ROOT}/tests/configs/pspnet_repvgg_tiny_citymini.py'
CLASSIFIER = f'{REPO_ROOT}/configs/imagenet/repvgg_a0_tinyimagenet.py'


def _random_checkpoint(config, path, seed=0):
    torch.manual_seed(seed)
    model = build_model(read_config(config))
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return _random_checkpoint(CONFIG, tmp_path_factory.mktemp('ckpt') /
                              'seg.pth')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """A folder with two images of different sizes and a non-image file."""
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for name, size in (('a.png', (80, 160)), ('b.jpg', (64, 96))):
        cv2.imwrite(str(folder / name),
                    rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    (folder / 'notes.txt').write_text('not an image')
    return folder


def test_new_and_old_api_names_give_the_same_result(checkpoint, images):
    image = str(images / 'a.png')
    new = inference_model(init_model(CONFIG, checkpoint), image)
    old = inference_segmentor(init_segmentor(CONFIG, checkpoint), image)
    assert new.pred_sem_seg.data.shape == (1, 80, 160)
    assert torch.equal(new.pred_sem_seg.data, old.pred_sem_seg.data)
    assert torch.allclose(new.seg_logits.data, old.seg_logits.data)


def test_init_model_loads_a_classifier(tmp_path):
    path = _random_checkpoint(CLASSIFIER, tmp_path / 'cls.pth', seed=1)
    model = init_model(CLASSIFIER, path)
    saved = torch.load(path, weights_only=True)['state_dict']
    assert not model.training and model.head.fc.out_features == 4
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 56, 56), mode='tensor')
    assert logits.shape == (2, 4)


def _demo(*args, cwd):
    return subprocess.run(
        [sys.executable, f'{REPO_ROOT}/demo/image_demo.py', *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=300)


def test_image_demo_writes_overlays_and_legends(checkpoint, images, tmp_path):
    for out, extra in (('plain', []), ('legend', ['--legend'])):
        result = _demo(images, CONFIG, checkpoint, '--out-dir', tmp_path / out,
                       '--opacity', 0.6, *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert 'wrote 2 overlay(s)' in result.stdout
    model = init_model(CONFIG, checkpoint)
    palette = model.dataset_meta['palette']
    for name, stem in (('a.png', 'a'), ('b.jpg', 'b')):
        image = cv2.imread(str(images / name))
        labels = inference_model(model, image).pred_sem_seg.data[0].numpy()
        plain = cv2.imread(str(tmp_path / 'plain' / f'{stem}.png'))
        expected = overlay(image, labels.astype(np.uint8), palette, 0.6)
        assert np.array_equal(plain, expected)  # the API's labels, blended
        legend = cv2.imread(str(tmp_path / 'legend' / f'{stem}.png'))
        assert legend.shape[1] > image.shape[1]
        assert np.array_equal(legend[:image.shape[0], :image.shape[1]],
                              expected)
        panel = legend[:, image.shape[1]:].reshape(-1, 3)
        for class_id in np.unique(labels):  # a swatch of each class shown
            bgr = np.array(palette[class_id][::-1], np.uint8)
            assert (panel == bgr).all(axis=1).any(), class_id


@pytest.mark.parametrize('case, expected', [
    ('missing', 'does not exist: give an image or a folder'),
    ('empty', 'holds no images'),
    ('opacity', 'argument --opacity: 2 is out of range'),
    ('overwrite', 'would overwrite the input image'),
])
def test_image_demo_refuses_with_one_line(case, expected, checkpoint,
                                          images, tmp_path):
    (tmp_path / 'empty').mkdir()
    source = {'missing': tmp_path / 'nope', 'empty': tmp_path / 'empty'}.get(
        case, images)
    out = images if case == 'overwrite' else tmp_path / 'out'
    opacity = 2 if case == 'opacity' else 0.5
    result = _demo(source, CONFIG, checkpoint, '--out-dir', out, '--opacity',
                   opacity, cwd=tmp_path)
    assert result.returncode == 2
    assert re.match(r'(\S+: )?error: ', result.stderr.strip().splitlines()[-1])
    assert expected in result.stderr and 'Traceback' not in result.stderr
    assert not (tmp_path / 'out').exists()
