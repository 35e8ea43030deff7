"""Check a segmentation data set before a long run, not hours into it.

Every image and label map of the train/val lists must exist and be whole,
an image and its label map must have the same size, and labels may hold
only the train ids (0 .. num_classes-1) and the ignore index. Image sizes
come from the file headers, completeness from the PNG/JPEG end marker and
a PNG's integrity from its chunk checksums, so images are never decoded;
label maps are decoded (their values are the point). Samples are checked
in parallel.

:func:`check_dataset` does the work for ``tools/check_dataset.py`` and for
:class:`CheckDatasetHook`, which runs it at ``before_train``.
"""
import io
import os
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.utils import track_parallel_progress, track_progress
from PIL import Image

from mmseg.registry import DATASETS, HOOKS
from ..utils.errors import InvalidArgument, UserError
from ..utils.images import ImageTooLarge, check_image_size

#: The bytes a whole file of each format ends with (PNG: the IEND chunk
#: with its CRC; JPEG: the end-of-image marker).
END_MARKERS = {'PNG': b'IEND\xaeB`\x82', 'JPEG': b'\xff\xd9'}
LABEL_MODES = ('L', 'P', 'I', 'I;16')
#: Below this many samples per process a pool costs more than it saves.
MIN_SAMPLES_PER_PROCESS = 32
#: Problems quoted in the one-line error of a failed check.
QUOTED_PROBLEMS = 3


class DatasetCheckError(UserError, ValueError):
    """A data set that training would trip over; ``problems`` lists every
    ``'path: what is wrong'`` found here (``count`` may include more)."""

    def __init__(self, problems, where, advice, count=None):
        self.problems = list(problems)
        count = len(self.problems) if count is None else count
        quoted = '; '.join(self.problems[:QUOTED_PROBLEMS])
        more = len(self.problems) - QUOTED_PROBLEMS
        super().__init__(
            f'{plural(count, "problem")} in {where}'
            f'{f": {quoted}" if quoted else ""}'
            f'{f"; and {more} more" if more > 0 else ""} ({advice})')


def plural(count, noun):
    return f'{count} {noun}{"" if count == 1 else "s"}'


def _unwrap(dataset):
    """The first segmentation data set inside Concat/Repeat wrappers."""
    while not hasattr(dataset, 'ignore_index'):
        inner = getattr(dataset, 'datasets', None) or [
            getattr(dataset, 'dataset', None)]
        if inner[0] is None:
            raise InvalidArgument(f'{type(dataset).__name__} is not a '
                             'segmentation data set: the check reads '
                             'image and label-map pairs')
        dataset = inner[0]
    return dataset


def label_rules(dataset):
    """``(raw label values the data set's loading accepts, how to say
    it)``: train ids (shifted by one with ``reduce_zero_label``, or the
    ``label_map`` keys of a class subset) and the ignore index."""
    plain = _unwrap(dataset)
    num_classes, ignore = len(plain.metainfo['classes']), plain.ignore_index
    if plain.label_map:
        values = set(plain.label_map)
        what = f'the {len(values)} ids of label_map'
    else:
        first = 1 if plain.reduce_zero_label else 0
        last = num_classes - 1 + first
        values = set(range(first, last + 1))
        what = f'the {num_classes} class ids {first}..{last}'
        if plain.reduce_zero_label:
            values.add(0)  # becomes the ignore index
            what += ' (0 is ignored: reduce_zero_label)'
    return frozenset(values | {ignore}), \
        f'{what} and the ignore index {ignore}'


def _is_whole(path, image_format):
    marker = END_MARKERS.get(image_format)
    if marker is None:
        return True
    with open(path, 'rb') as f:
        f.seek(0, 2)
        f.seek(max(f.tell() - len(marker) - 2, 0))  # JPEGs may pad a little
        return marker in f.read()


def _missing(path, what):
    if osp.islink(path) and not osp.exists(path):
        return f'{path}: {what} is a link to {os.readlink(path)}, which ' \
            'does not exist'
    return None if osp.isfile(path) else f'{path}: missing {what}'


def _image_size(path, problems):
    missing = _missing(path, 'image')
    if missing:
        problems.append(missing)
        return None
    try:
        with Image.open(path) as image:
            size, image_format = image.size, image.format
            check_image_size(*size, 'the image')
            if not _is_whole(path, image_format):
                problems.append(f'{path}: truncated image (no '
                                f'{image_format} end marker)')
                return None
            if image_format == 'PNG':
                image.verify()  # every chunk's CRC: a corrupt body fails
    except (Image.DecompressionBombError, ImageTooLarge) as exc:
        problems.append(f'{path}: not a camera image ({exc})')
        return None
    except (OSError, SyntaxError, ValueError) as exc:
        problems.append(f'{path}: unreadable image ({exc})')
        return None
    return size


def _label_problems(path, image_size, rules):
    missing = _missing(path, 'label map')
    if missing:
        return [missing]
    try:
        with Image.open(path) as label:
            check_image_size(*label.size, 'the label map')
            label.load()
            mode, size, values = label.mode, label.size, np.asarray(label)
    except (Image.DecompressionBombError, ImageTooLarge) as exc:
        return [f'{path}: not a label map of a camera image ({exc})']
    except (OSError, SyntaxError, ValueError) as exc:
        return [f'{path}: unreadable label map ({exc})']
    if mode not in LABEL_MODES:
        return [f'{path}: label map has mode {mode}, expected one channel '
                'of train ids (a *_labelTrainIds.png, not a colour map)']
    problems = []
    if image_size is not None and size != image_size:
        problems.append(f'{path}: label map is {size[1]}x{size[0]} (HxW) '
                        f'but its image is {image_size[1]}x{image_size[0]}')
    present = np.flatnonzero(np.bincount(values.ravel())) if \
        values.dtype == np.uint8 else np.unique(values)
    allowed, what = rules
    outside = sorted(int(v) for v in present if int(v) not in allowed)
    if outside:
        problems.append(f'{path}: label values {outside} are not among '
                        f'{what}')
    return problems


def check_sample(task):
    """Problems of one ``(image path, label path or None, label rules)``."""
    image_path, label_path, rules = task
    problems = []
    size = _image_size(image_path, problems)
    if label_path is not None:
        problems += _label_problems(label_path, size, rules)
    return problems


def dangling_links(folder, suffix):
    """``'path: ...'`` for each link ending in ``suffix`` under ``folder``
    that points nowhere: folder scans (mmengine's, MMSeg's data sets) list
    files only, so they skip those samples without a word."""
    found = []
    for parent, _, names in os.walk(folder):
        found += [_missing(osp.join(parent, name), 'image') for name in names
                  if name.endswith(suffix) and not osp.exists(
                      osp.join(parent, name))]
    return sorted(found)


def _scan_problems(dataset):
    """The dangling links a data set built by scanning its image folder
    (no ``ann_file``) skipped."""
    plain = _unwrap(dataset)
    folder = plain.data_prefix.get('img_path') or plain.data_root
    if plain.ann_file or not folder or not osp.isdir(folder):
        return []
    return dangling_links(folder, plain.img_suffix)


def check_dataset(dataset, nproc=8, shard=(0, 1), progress=True):
    """Problems of every sample of a built data set, as ``'path: what'``;
    ``shard=(rank, world_size)`` checks every ``world_size``-th sample;
    ``progress``: draw a progress bar on stdout."""
    rules = label_rules(dataset)
    rank, world_size = shard
    scan_problems = _scan_problems(dataset) if rank == 0 else []
    tasks = []
    for index in range(rank, len(dataset), world_size):
        info = dataset.get_data_info(index)
        tasks.append((info['img_path'], info.get('seg_map_path'), rules))
    nproc = min(nproc, len(tasks) // MIN_SAMPLES_PER_PROCESS)
    bar = sys.stdout if progress else io.StringIO()
    if nproc > 1:
        results = track_parallel_progress(check_sample, tasks, nproc,
                                          chunksize=8, file=bar)
    else:
        results = track_progress(check_sample, tasks, file=bar)
    return scan_problems + [problem for found in results for problem in found]


def dataset_cfgs(cfg, splits):
    """``{split: dataset config}`` of the config's dataloaders that exist."""
    found = {}
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            found[split] = loader.dataset
    return found


def _leaf_cfgs(dataset_cfg):
    """The configs of the data sets inside Concat/Repeat wrappers."""
    inner = dataset_cfg.get('datasets') or (
        [dataset_cfg.dataset] if 'dataset' in dataset_cfg else None)
    if inner:
        return [leaf for cfg in inner for leaf in _leaf_cfgs(cfg)]
    return [dataset_cfg]


def _folders(dataset_cfg):
    """The folders and files a data set config reads its lists from."""
    root = dataset_cfg.get('data_root') or ''
    relative = list((dataset_cfg.get('data_prefix') or {}).values())
    relative.append(dataset_cfg.get('ann_file'))
    return [osp.join(root, path) for path in relative if path]


def data_folders(dataset_cfg):
    """Every folder and list file a data set config (wrappers included)
    reads."""
    return [path for leaf in _leaf_cfgs(dataset_cfg)
            for path in _folders(leaf)]


def _is_empty(dataset_cfg):
    """The list file (or, without one, the image folder) of an existing
    data set holds no sample: MMSeg's data sets fail to build on it with
    "need at least one array to concatenate"."""
    root = dataset_cfg.get('data_root') or ''
    if dataset_cfg.get('ann_file'):
        path = osp.join(root, dataset_cfg.ann_file)
        if osp.isfile(path):
            with open(path) as f:
                return (path, not any(line.strip() for line in f))
        return (path, False)
    images = (dataset_cfg.get('data_prefix') or {}).get('img_path')
    path = osp.join(root, images or '')
    return (path, osp.isdir(path) and not any(
        files for _, _, files in os.walk(path)))


def check_data_roots(cfg, splits):
    """Raise :class:`DatasetCheckError` naming each data folder of the
    ``splits``' data sets that does not exist: the one mistake that
    otherwise ends in a traceback from deep inside the Runner."""
    problems, split_of_first = [], None
    for split, dataset_cfg in dataset_cfgs(cfg, splits).items():
        for leaf in _leaf_cfgs(dataset_cfg):
            found = [f'{path} does not exist' for path in _folders(leaf)
                     if not osp.exists(path)]
            path, empty = (None, False) if found else _is_empty(leaf)
            if empty:
                found.append(f'{path} holds no samples (an empty {split} '
                             'split)')
            problems += found
            split_of_first = split_of_first or (split if found else None)
    if problems:
        raise DatasetCheckError(
            problems, 'the data paths', 'prepare the data set (README, '
            f'"Data") or pass --cfg-options {split_of_first}_dataloader.'
            'dataset.data_root=DIR')


def build_datasets(cfg, splits):
    """``{split: data set}``, built as training builds them."""
    check_data_roots(cfg, splits)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return {split: DATASETS.build(dataset_cfg)
            for split, dataset_cfg in dataset_cfgs(cfg, splits).items()}


@HOOKS.register_module()
class CheckDatasetHook(Hook):
    """Run :func:`check_dataset` on the train and val data before the first
    iteration: a broken file fails the run in seconds. In distributed runs
    each process checks its share and all of them fail together. The
    progress bar shows on a terminal only (in a log it is one long line).

    Args:
        nproc (int): worker processes per training process.
        enabled (bool): ``False`` skips the check (e.g. ``--cfg-options
            custom_hooks.0.enabled=False``).
    """

    priority = 'VERY_HIGH'

    def __init__(self, nproc=8, enabled=True):
        self.nproc, self.enabled = nproc, enabled

    def before_train(self, runner):
        if not self.enabled:
            return
        datasets = dict(train=runner.train_dataloader.dataset)
        if runner.val_loop is not None:
            datasets['val'] = runner.val_dataloader.dataset
        rank, world_size = get_dist_info()
        problems = []
        for dataset in datasets.values():
            problems += check_dataset(dataset, self.nproc, (rank, world_size),
                                      progress=sys.stdout.isatty())
        total = torch.tensor(len(problems))
        all_reduce(total)  # all processes stop, not only those that found
        if problems:
            raise DatasetCheckError(problems, 'the train/val data',
                                    'tools/check_dataset.py CONFIG lists '
                                    'them all')
        if total:
            raise DatasetCheckError([], 'the train/val data', 'found by the '
                                    'other processes', count=int(total))
        runner.logger.info(
            'Data set check passed: ' + ', '.join(
                f'{split} {len(d)} samples' for split, d in datasets.items()))
