"""Classify images with a trained RepVGG classifier: top-k classes, scores.

python tools/classify.py CONFIG CHECKPOINT IMAGE... [--topk 5] [--device cpu]
    [--classes names.txt]

Takes our checkpoints and official / mmpretrain ones, training or fused
form. Class names come from --classes, else from the checkpoint (saved by
training), else the label numbers are printed.
"""
import argparse

from repvgg_seg_cli import (checkpoint_file, config_file, input_file,
                            positive, run_cli)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', type=config_file,
                        help='classification config')
    parser.add_argument('checkpoint', type=checkpoint_file,
                        help='checkpoint file')
    parser.add_argument('images', nargs='+', type=input_file('image'),
                        help='image files')
    parser.add_argument('--topk', type=positive(int), default=5,
                        help='classes to print per image (default 5)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--classes', type=input_file('classes file'),
        help='text file with one class name per line, in label order (for '
        'checkpoints that carry none, e.g. official ones)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import classify
    from repvgg_seg.utils.text import printable
    results = classify(args.config, args.checkpoint, args.images, args.topk,
                       args.device, args.classes)
    for path, top in results:
        print(printable(path))
        for rank, (name, score) in enumerate(top, 1):
            # class names come from the checkpoint file: no escape codes
            print(f'  {rank}. {printable(name)}  {score:.4f}')


if __name__ == '__main__':
    run_cli(main)
