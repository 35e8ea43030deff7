"""Citymini must look like real Cityscapes to every tool, reproducibly."""
import json
import os
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from forked import run_tool
from helpers import read_video
from PIL import Image

from repvgg_seg.datasets import (generate_citymini, make_driving_video,
                                 render_scene, sample_street, street_objects)
from repvgg_seg.datasets.citymini import annotation_json

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(num_train=4, num_val=2, height=64, width=128)
#: leftImg8bit/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
IMAGE_PATH = re.compile(
    r'leftImg8bit/(train|val)/([a-z]+)/\2_\d{6}_\d{6}_leftImg8bit\.png')


@pytest.fixture(scope='module')
def citymini(tmp_path_factory):
    root = tmp_path_factory.mktemp('citymini')
    return root, generate_citymini(root, seed=0, **SMALL)


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


def test_same_seed_gives_identical_bytes(citymini, tmp_path):
    root, _ = citymini
    generate_citymini(tmp_path / 'again', seed=0, **SMALL)
    assert _files(tmp_path / 'again') == _files(root)
    generate_citymini(tmp_path / 'other', seed=1, **SMALL)
    images = [name for name in _files(root) if name.endswith('.png')]
    assert all(
        (tmp_path / 'other' / name).read_bytes() != (root / name).read_bytes()
        for name in images)


def test_layout_and_names_follow_cityscapes(citymini):
    root, summary = citymini
    images = sorted(
        p.relative_to(root).as_posix()
        for p in (root / 'leftImg8bit').rglob('*.png'))
    assert len(images) == 6
    cities = {'train': set(), 'val': set()}
    for image in images:
        match = IMAGE_PATH.fullmatch(image)
        assert match, image
        cities[match[1]].add(match[2])
        stem = image[len('leftImg8bit/'):-len('_leftImg8bit.png')]
        for suffix in ('_gtFine_polygons.json', '_gtFine_labelIds.png'):
            assert (root / 'gtFine' / (stem + suffix)).is_file()
        assert Image.open(root / image).size == (128, 64)
        assert Image.open(root / image).mode == 'RGB'
    assert cities['train'] and cities['val']
    assert not cities['train'] & cities['val']
    assert len(summary['splits']['train']) == 4
    assert len(summary['splits']['val']) == 2


def test_polygon_json_is_cityscapes_format(citymini):
    root, _ = citymini
    for path in (root / 'gtFine').rglob('*_gtFine_polygons.json'):
        doc = json.loads(path.read_text())
        assert (doc['imgHeight'], doc['imgWidth']) == (64, 128)
        assert doc['objects']
        for obj in doc['objects']:
            assert obj['label'] in name2label
            points = np.asarray(obj['polygon'])
            assert points.dtype.kind == 'i' and points.shape[1] == 2
            assert points.min() >= 0
            assert points[:, 0].max() < 128 and points[:, 1].max() < 64


def _render_ids(json_path, encoding):
    annotation = Annotation()
    annotation.fromJsonFile(str(json_path))
    return np.asarray(createLabelImage(annotation, encoding))


def test_label_ids_are_what_cityscapesscripts_renders(citymini):
    root, _ = citymini
    label_ids = set()
    for path in (root / 'gtFine').rglob('*_gtFine_polygons.json'):
        written = np.asarray(
            Image.open(str(path).replace('_polygons.json', '_labelIds.png')))
        np.testing.assert_array_equal(written, _render_ids(path, 'ids'))
        label_ids |= set(np.unique(written).tolist())
    train_classes = {label.trainId for label in name2label.values()
                     if label.id in label_ids} - {255}
    assert len(train_classes) >= 10, train_classes


def test_image_is_painted_from_the_same_polygons():
    """Every pixel's colour comes from the object its label comes from."""
    rng = np.random.default_rng(3)
    street = sample_street(rng, 64, 128)
    objects = street_objects(street)
    _, index = render_scene(objects, 64, 128, rng)
    annotation = Annotation()
    annotation.fromJsonText(json.dumps(annotation_json(objects, 64, 128)))
    ids_of_index = np.array([0] + [name2label[o.label].id for o in objects])
    np.testing.assert_array_equal(
        ids_of_index[index], np.asarray(createLabelImage(annotation, 'ids')))


def test_classes_have_distinct_colours(citymini):
    """Road, sky and vegetation differ in colour, so they can be learnt."""
    root, _ = citymini
    means = {}
    for path in (root / 'gtFine').rglob('*_gtFine_labelIds.png'):
        ids = np.asarray(Image.open(path))
        image_path = str(path).replace('gtFine', 'leftImg8bit', 1).replace(
            '_gtFine_labelIds', '_leftImg8bit')
        image = np.asarray(Image.open(image_path), np.float32)
        for name in ('road', 'sky', 'vegetation'):
            pixels = image[ids == name2label[name].id]
            means.setdefault(name, []).append(pixels)
    centres = {name: np.concatenate(v).mean(0) for name, v in means.items()}
    for a, b in (('road', 'sky'), ('road', 'vegetation'),
                 ('sky', 'vegetation')):
        assert np.abs(centres[a] - centres[b]).max() > 30, (a, b)


def test_regenerating_replaces_an_earlier_citymini(tmp_path):
    generate_citymini(tmp_path, seed=0, **SMALL)
    generate_citymini(
        tmp_path, seed=0, num_train=1, num_val=1, height=64, width=128)
    assert len(list((tmp_path / 'leftImg8bit').rglob('*.png'))) == 2


def test_refuses_to_overwrite_other_data(tmp_path):
    (tmp_path / 'gtFine').mkdir()
    with pytest.raises(FileExistsError, match='refusing'):
        generate_citymini(tmp_path, **SMALL)


def test_driving_video_has_requested_frames_size_and_fps(tmp_path):
    path = make_driving_video(
        str(tmp_path / 'drive.mp4'), num_frames=12, fps=6.0, size=(128, 64))
    assert Path(path).is_file()
    frames, fps = read_video(path)
    frames = [frame.astype(np.float32) for frame in frames]
    assert len(frames) == 12
    assert frames[0].shape == (64, 128, 3)
    assert fps == pytest.approx(6.0)
    # Consecutive frames show one street: they differ less than two streets.
    other_path = make_driving_video(str(tmp_path / 'other.mp4'),
                                    num_frames=1, fps=6.0, size=(128, 64),
                                    seed=1)
    other = [frame.astype(np.float32) for frame in read_video(other_path)[0]]
    step = max(np.abs(a - b).mean() for a, b in zip(frames, frames[1:]))
    assert step < np.abs(frames[0] - other[0]).mean()


def test_cli_writes_the_set_and_video(tmp_path, monkeypatch, capsys):
    out, video = tmp_path / 'citymini', tmp_path / 'drive.mp4'
    monkeypatch.setattr(sys, 'argv', [
        'make_citymini.py', '--out', str(out), '--num-train', '2',
        '--num-val', '1', '--height', '64', '--width', '128',
        '--video', str(video), '--frames', '3'
    ])  # yapf: disable
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / 'tools' / 'make_citymini.py'),
                       run_name='__main__')
    assert exit_info.value.code in (None, 0)
    assert len(list((out / 'leftImg8bit').rglob('*.png'))) == 3
    assert video.is_file()
    assert 'prepare_cityscapes.py' in capsys.readouterr().out


def test_cli_video_alone_writes_only_the_video(tmp_path):
    video = tmp_path / 'drive.mp4'
    result = run_tool(str(REPO / 'tools' / 'make_citymini.py'), '--video',
                      video, '--frames', '2', '--height', '64', '--width',
                      '128', setup=lambda: os.chdir(tmp_path))
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path) == ['drive.mp4']
    assert 'prepare_cityscapes' not in result.stdout
