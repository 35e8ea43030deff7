"""Convert a RepVGG checkpoint between layouts and to the fused deploy form.

    python tools/convert_checkpoint.py SRC DST [--arch ARCH]
        [--to {train,deploy}] [--layout {repvgg-seg,official,mmpretrain}]

SRC may be an official RepVGG, mmpretrain or repvgg-seg checkpoint, training
or deploy form; only the backbone is written. Exit code 2 on a refused or
failed conversion.
"""
import argparse

import repvgg_seg  # noqa: F401  (registers modules; mmcv-lite/torch compat)
from repvgg_seg.apis import convert_checkpoint
from repvgg_seg.models import ARCH_SETTINGS, FORMS
from repvgg_seg.models.checkpoints import LAYOUTS
from repvgg_seg.utils.cli import cli_main, run_cli
from repvgg_seg.utils.text import printable


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', metavar='SRC', help='checkpoint to read')
    parser.add_argument('dst', metavar='DST', help='file to write')
    parser.add_argument('--arch', choices=list(ARCH_SETTINGS),
                        help='the arch SRC must hold (default: the one it '
                        'holds)')
    parser.add_argument('--to', choices=FORMS,
                        help='deploy fuses training-form weights into one '
                        '3x3 conv per block (default: the form of SRC)')
    parser.add_argument('--layout', choices=list(LAYOUTS),
                        default='repvgg-seg',
                        help='key names to write (default: repvgg-seg)')
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    meta, dropped = convert_checkpoint(args.src, args.dst, args.arch,
                                       to=args.to, layout=args.layout)
    print(f"wrote {args.dst}: RepVGG-{meta['arch']}, {meta['form']} form, "
          f"{meta['layout']} layout, from {meta['source']}")
    if dropped:
        keys = printable(', '.join(dropped[:4]))  # names from the file
        print(f'left out {len(dropped)} non-backbone keys: '
              f'{keys}{", ..." if len(dropped) > 4 else ""}')
    return 0


if __name__ == '__main__':
    run_cli(main)
