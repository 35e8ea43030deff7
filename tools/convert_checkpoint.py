"""Convert a RepVGG checkpoint between layouts and to the fused deploy form.

    python tools/convert_checkpoint.py SRC DST --arch ARCH
        [--to {train,deploy}] [--layout {repvgg-seg,official,mmpretrain}]

SRC may be an official RepVGG, mmpretrain or repvgg-seg checkpoint, training
or deploy form; only the backbone is written. Exit code 2 on a refused or
failed conversion.
"""
import argparse
import sys

from repvgg_seg.apis import convert_checkpoint
from repvgg_seg.models import ARCH_SETTINGS, FORMS
from repvgg_seg.models.checkpoints import LAYOUTS
from repvgg_seg.utils.cli import is_user_error, one_line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', metavar='SRC', help='checkpoint to read')
    parser.add_argument('dst', metavar='DST', help='file to write')
    parser.add_argument('--arch', required=True, choices=list(ARCH_SETTINGS))
    parser.add_argument('--to', choices=FORMS,
                        help='deploy fuses training-form weights into one '
                        '3x3 conv per block (default: the form of SRC)')
    parser.add_argument('--layout', choices=list(LAYOUTS),
                        default='repvgg-seg',
                        help='key names to write (default: repvgg-seg)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        meta, dropped = convert_checkpoint(args.src, args.dst, args.arch,
                                           to=args.to, layout=args.layout)
    except Exception as exc:  # noqa: B902 (bugs are re-raised)
        if not is_user_error(exc):
            raise
        print(f'error: {one_line(exc)}', file=sys.stderr)
        return 2
    print(f"wrote {args.dst}: RepVGG-{meta['arch']}, {meta['form']} form, "
          f"{meta['layout']} layout, from {meta['source']}")
    if dropped:
        print(f'left out {len(dropped)} non-backbone keys: '
              f'{", ".join(dropped[:4])}{", ..." if len(dropped) > 4 else ""}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
