"""tools/check_dataset.py and the check training runs first: each kind of
broken sample is reported with its path, a clean set passes, and training
stops before its first iteration with the same messages."""
import os
import shutil

import numpy as np
import pytest
from forked import run_tool
from helpers import REPO_ROOT, citymini_root
from PIL import Image

from repvgg_seg.apis import load_runner_config
from repvgg_seg.datasets import CheckDatasetHook, build_datasets, check_dataset
from repvgg_seg.datasets import check as check_module

CONFIG = os.path.join(REPO_ROOT, 'tests', 'configs',
                      'pspnet_repvgg_tiny_citymini.py')
SUFFIX = '_gtFine_labelTrainIds.png'


@pytest.fixture(scope='module')
def clean_root(tmp_path_factory):
    return citymini_root(tmp_path_factory, 2, 2)


@pytest.fixture
def root(clean_root, tmp_path):
    return shutil.copytree(clean_root, tmp_path / 'citymini')


def first(root, kind, split='train'):
    folder = root / ('leftImg8bit' if kind == 'image' else 'gtFine') / split
    suffix = '_leftImg8bit.png' if kind == 'image' else SUFFIX
    return sorted(folder.glob(f'*/*{suffix}'))[0]


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def write_label(path, array, mode=None):
    Image.fromarray(array, mode).save(path)


#: name -> (how to break the first train sample, what the report says)
BREAKAGES = {
    'missing label': (lambda r: first(r, 'label').unlink(),
                      'missing label map'),
    'truncated image': (lambda r: cut_in_half(first(r, 'image')),
                        'truncated image (no PNG end marker)'),
    'unreadable label': (lambda r: first(r, 'label').write_bytes(b'no png'),
                         'unreadable label map'),
    'label of another size': (
        lambda r: write_label(first(r, 'label'), np.zeros((32, 64), np.uint8)),
        'label map is 32x64 (HxW) but its image is 64x128'),
    'values outside the train ids': (
        lambda r: write_label(first(r, 'label'),
                              np.full((64, 128), 40, np.uint8)),
        'label values [40] are not among the 19 class ids 0..18 and the '
        'ignore index 255'),
    'colour label map': (
        lambda r: write_label(first(r, 'label'),
                              np.zeros((64, 128, 3), np.uint8)),
        'label map has mode RGB'),
}


def check(root, *extra):
    return run_tool(os.path.join(REPO_ROOT, 'tools', 'check_dataset.py'),
                    CONFIG, '--nproc', 2, '--cfg-options',
                    *[f'{split}_dataloader.dataset.data_root={root}'
                      for split in ('train', 'val')], *extra)


def test_clean_set_passes(root):
    result = check(root)
    assert result.returncode == 0, result.stderr
    assert 'checked 2 train + 2 val samples' in result.stdout
    assert result.stdout.rstrip().endswith('no problems')


@pytest.mark.parametrize('name', list(BREAKAGES))
def test_each_problem_is_reported_with_its_file(name, root):
    breakage, expected = BREAKAGES[name]
    breakage(root)
    result = check(root)
    assert result.returncode == 1, result.stderr
    problems = [line for line in result.stdout.splitlines()
                if line.startswith(str(root))]
    assert len(problems) == 1 and expected in problems[0], result.stdout
    assert result.stdout.rstrip().endswith(': 1 problem')


def test_worker_processes_find_the_same_problems(root, monkeypatch):
    for name in ('truncated image', 'values outside the train ids'):
        BREAKAGES[name][0](root)
    cfg = load_runner_config(CONFIG, {'train_dataloader.dataset.data_root': root})
    dataset = build_datasets(cfg, ['train'])['train']
    sequential = check_dataset(dataset, nproc=1)
    monkeypatch.setattr(check_module, 'MIN_SAMPLES_PER_PROCESS', 1)
    assert check_dataset(dataset, nproc=2) == sequential
    assert len(sequential) == 2


def test_missing_data_root_is_one_error_line(tmp_path):
    result = check(tmp_path / 'nowhere')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert errors == [
        f'error: 4 problems in the data paths: {tmp_path}/nowhere/leftImg8bit'
        f'/train does not exist; {tmp_path}/nowhere/gtFine/train does not '
        f'exist; {tmp_path}/nowhere/leftImg8bit/val does not exist; and 1 '
        'more (prepare the data set (README, "Data") or pass --cfg-options '
        'train_dataloader.dataset.data_root=DIR)']


def test_training_stops_before_the_first_iteration(root, tmp_path):
    BREAKAGES['values outside the train ids'][0](root)
    result = run_tool(
        os.path.join(REPO_ROOT, 'tools', 'train.py'), CONFIG, '--work-dir',
        tmp_path / 'work', '--cfg-options',
        *[f'{split}_dataloader.dataset.data_root={root}'
          for split in ('train', 'val')])
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith('error: 1 problem in the train/val data: ')
    assert error.endswith('(tools/check_dataset.py CONFIG lists them all)')
    assert 'label values [40] are not among' in error
    assert 'Iter(train)' not in result.stdout
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_the_check_can_be_switched_off():
    CheckDatasetHook(enabled=False).before_train(runner=None)
