"""Prepare a Cityscapes root for MMSeg: trainIds label PNGs and split lists.

Example: python tools/prepare_cityscapes.py data/citymini --nproc 4
"""
import argparse

from repvgg_seg_cli import positive, run_cli


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'data_root', help='folder that holds leftImg8bit/ and gtFine/')
    parser.add_argument(
        '--nproc',
        type=positive(int),
        default=None,
        help='worker processes (default: CPU count, at most 8)')
    return parser.parse_args()


def main():
    args = parse_args()
    from repvgg_seg.apis import prepare_cityscapes
    summary = prepare_cityscapes(args.data_root, args.nproc)
    lists = ', '.join(f'{split}.txt ({count})'
                      for split, count in summary['splits'].items())
    print(f'converted {summary["converted"]} label images, skipped '
          f'{summary["skipped"]} already up to date; wrote {lists} in '
          f'{args.data_root}')


if __name__ == '__main__':
    run_cli(main)
