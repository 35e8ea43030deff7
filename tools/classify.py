"""Classify images with a trained RepVGG classifier: top-k classes, scores.

python tools/classify.py CONFIG CHECKPOINT IMAGE... [--topk 5] [--device cpu]

Takes our checkpoints and official / mmpretrain ones, training or fused
form. Class names come from the checkpoint (saved by training), else from
--classes, else the label numbers are printed.
"""
import argparse
import sys

import torch
from mmengine.dataset import Compose, pseudo_collate
from mmengine.fileio import list_from_file

import repvgg_seg  # noqa: F401  (registers modules; mmcv-lite/torch compat)
from repvgg_seg.apis import init_segmentor
from repvgg_seg.deploy import DeployError
from repvgg_seg.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='classification config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--topk', type=int, default=5,
                        help='classes to print per image')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--classes', help='text file with one class name per line, in label '
        'order (for checkpoints that carry none, e.g. official ones)')
    return parser.parse_args(argv)


def class_names(model, classes_file):
    if classes_file:
        names = list_from_file(classes_file)
    else:
        names = (model.dataset_meta or {}).get('classes')
    if names is None:
        return [str(i) for i in range(model.head.num_classes)]
    if len(names) != model.head.num_classes:
        raise DeployError(f'{len(names)} class names for a model with '
                          f'{model.head.num_classes} classes')
    return names


@torch.no_grad()
def classify(model, image_paths, topk):
    """``(path, [(score, label), ...])`` for each image, best first."""
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    for path in image_paths:
        sample = model.test_step(pseudo_collate([pipeline(
            dict(img_path=path))]))[0]
        scores, labels = sample.pred_score.topk(
            min(topk, len(sample.pred_score)))
        yield path, list(zip(scores.tolist(), labels.tolist()))


def main(argv=None):
    args = parse_args(argv)
    try:
        model = init_segmentor(args.config, args.checkpoint, args.device)
        names = class_names(model, args.classes)
        for path, top in classify(model, args.images, args.topk):
            print(path)
            for rank, (score, label) in enumerate(top, 1):
                print(f'  {rank}. {names[label]}  {score:.4f}')
    except (UserError, OSError) as exc:  # OSError: ImageReadError too
        sys.exit(f'error: {exc}')


if __name__ == '__main__':
    main()
