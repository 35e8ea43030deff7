"""Preparing a Cityscapes root: trainIds PNGs, split lists, clear errors."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from repvgg_seg.datasets import (CityscapesPrepError, generate_citymini,
                                 prepare_cityscapes)

REPO = Path(__file__).resolve().parents[1]
STEM = 'minitown/minitown_000000_000019'


@pytest.fixture
def root(tmp_path):
    root = tmp_path / 'citymini'
    generate_citymini(root, num_train=2, num_val=1, height=64, width=128)
    return root


def _gt(root, suffix='_gtFine_polygons.json'):
    return root / 'gtFine' / 'train' / (STEM + suffix)


def _image(root):
    return root / 'leftImg8bit' / 'train' / (STEM + '_leftImg8bit.png')


def _train_ids(root):
    return sorted((root / 'gtFine').rglob('*_gtFine_labelTrainIds.png'))


def test_writes_train_ids_and_split_lists(root):
    summary = prepare_cityscapes(root, nproc=1)
    assert summary == dict(converted=3, skipped=0,
                           splits=dict(train=2, val=1))
    outputs = _train_ids(root)
    assert len(outputs) == 3
    for path in outputs:
        train_ids = np.asarray(Image.open(path))
        assert set(np.unique(train_ids)) <= set(range(19)) | {255}
        assert len(np.unique(train_ids)) >= 5
        annotation = Annotation()
        annotation.fromJsonFile(
            str(path).replace('_labelTrainIds.png', '_polygons.json'))
        np.testing.assert_array_equal(
            train_ids, np.asarray(createLabelImage(annotation, 'trainIds')))
    assert (root / 'train.txt').read_text().splitlines() == [
        'minitown/minitown_000000_000019',
        'pixelburg/pixelburg_000000_000019',
    ]
    assert (root / 'val.txt').read_text() == \
        'synthville/synthville_000000_000019\n'
    assert not (root / 'test.txt').exists()
    assert not [p for p in root.rglob('.*')], 'temporary files left behind'


def test_rerun_skips_up_to_date_labels(root):
    prepare_cityscapes(root, nproc=2)
    assert prepare_cityscapes(root, nproc=2)['skipped'] == 3
    later = os.path.getmtime(_gt(root)) + 10
    os.utime(_gt(root), (later, later))  # as if the annotation was edited
    summary = prepare_cityscapes(root, nproc=1)
    assert (summary['converted'], summary['skipped']) == (1, 2)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


BREAKAGES = {
    # name: (how to break the root, the file the message must name)
    'corrupt json': (lambda r: _gt(r).write_text('{"imgHeight": 64,'), _gt),
    'unknown label': (lambda r: _gt(r).write_text(
        '{"imgHeight": 64, "imgWidth": 128, "objects": [{"label": "ufo", '
        '"polygon": [[0, 0], [9, 0], [9, 9]]}]}'), _gt),
    'image without json': (lambda r: _gt(r).unlink(), _image),
    'json without image': (lambda r: _image(r).unlink(), _gt),
    'corrupt image': (lambda r: _truncate(_image(r)), _image),
}


@pytest.mark.parametrize('breakage', BREAKAGES)
def test_broken_file_gives_clear_error(root, breakage):
    break_root, named_file = BREAKAGES[breakage]
    break_root(root)
    with pytest.raises(CityscapesPrepError) as error:
        prepare_cityscapes(root, nproc=1)
    message = str(error.value)
    assert str(named_file(root)) in message
    assert '\n' not in message
    assert not _gt(root, '_gtFine_labelTrainIds.png').exists()


@pytest.mark.parametrize('missing', ['', 'leftImg8bit', 'gtFine'])
def test_missing_folder_gives_clear_error(tmp_path, missing):
    for folder in ('leftImg8bit', 'gtFine'):
        if missing and folder != missing:
            (tmp_path / folder).mkdir()
    root = tmp_path if missing else tmp_path / 'nowhere'
    with pytest.raises(CityscapesPrepError, match=missing or 'does not exist'):
        prepare_cityscapes(root)


def test_cli_reports_bad_root_without_traceback(tmp_path):
    command = [sys.executable, str(REPO / 'tools' / 'prepare_cityscapes.py'),
               str(tmp_path / 'nowhere')]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith('error: ')
    assert str(tmp_path / 'nowhere') in result.stderr
    assert 'Traceback' not in result.stderr


def test_mmseg_cityscapes_dataset_finds_prepared_samples(root):
    import repvgg_seg  # noqa: F401  (lets mmseg.datasets import on mmcv-lite)
    from mmseg.datasets import CityscapesDataset
    from mmseg.datasets.transforms import LoadAnnotations

    prepare_cityscapes(root, nproc=1)
    for ann_file in ('', 'train.txt'):
        dataset = CityscapesDataset(
            data_root=str(root),
            ann_file=ann_file,
            data_prefix=dict(
                img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
            pipeline=[LoadAnnotations()])
        assert len(dataset) == 2
        for info in dataset.load_data_list():
            assert info['seg_map_path'].endswith('_gtFine_labelTrainIds.png')
            assert os.path.isfile(info['img_path'])
            assert os.path.isfile(info['seg_map_path'])
        seg_map = dataset[0]['gt_seg_map']
        assert seg_map.shape == (64, 128)
        assert set(np.unique(seg_map)) <= set(range(19)) | {255}
