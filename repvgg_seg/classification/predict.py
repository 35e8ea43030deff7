"""Top-k classes of images, named, for a loaded classifier.

The model comes in loaded (``repvgg_seg.apis.init_model``): this layer only
runs it through its config's test pipeline and names the labels.
"""
import os.path as osp

import torch
from mmengine.dataset import Compose, pseudo_collate
from mmengine.fileio import list_from_file

from ..utils.errors import InvalidArgument, PathNotFound
from ..utils.images import check_image_file


def class_names(model, classes_file=None):
    """Display names in label order: from ``classes_file`` (one per line),
    else those the checkpoint recorded (training saves them), else the label
    numbers (official checkpoints carry none)."""
    num_classes = model.head.num_classes
    if classes_file:
        if not osp.isfile(classes_file):
            raise PathNotFound(f'classes file {classes_file} does not exist')
        names = list_from_file(classes_file)
        source = classes_file
    else:
        names = (model.dataset_meta or {}).get('classes')
        source = 'the checkpoint'
    if names is None:
        return [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise InvalidArgument(
            f'{len(names)} class names in {source} for a model with '
            f'{num_classes} classes: give a --classes file with one name per '
            'line in label order')
    return list(names)


@torch.no_grad()
def top_classes(model, image_paths, topk=5):
    """``(path, [(label, score), ...])`` for each image, best first, through
    the test pipeline of ``model.cfg``."""
    if topk < 1:
        raise InvalidArgument(f'topk must be at least 1, got {topk}')
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    for path in image_paths:
        if not osp.isfile(path):
            raise PathNotFound(f'image {path} does not exist')
        check_image_file(path)
        sample = model.test_step(pseudo_collate([pipeline(
            dict(img_path=path))]))[0]
        scores, labels = sample.pred_score.topk(
            min(topk, len(sample.pred_score)))
        yield path, list(zip(labels.tolist(), scores.tolist()))


def classify_images(model, image_paths, topk=5, classes_file=None):
    """``[(path, [(class name, score), ...]), ...]``, best first."""
    names = class_names(model, classes_file)
    return [(path, [(names[label], score) for label, score in top])
            for path, top in top_classes(model, image_paths, topk)]
