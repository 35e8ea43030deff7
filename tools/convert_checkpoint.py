"""Convert a RepVGG checkpoint between layouts and to the fused deploy form.

    python tools/convert_checkpoint.py SRC DST [--arch ARCH]
        [--to {train,deploy}] [--layout {repvgg-seg,official,mmpretrain}]

SRC may be an official RepVGG, mmpretrain or repvgg-seg checkpoint, training
or deploy form; only the backbone is written. Exit code 2 on a refused or
failed conversion.
"""
import argparse

from repvgg_seg_cli import (checkpoint_file, cli_main, output_file,
                            package_choice, run_cli)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', metavar='SRC', type=checkpoint_file,
                        help='checkpoint to read')
    parser.add_argument('dst', metavar='DST',
                        type=output_file('converted checkpoint', 'out.pth'),
                        help='file to write')
    parser.add_argument('--arch', metavar='ARCH',
                        type=package_choice('repvgg_seg.models',
                                            'ARCH_SETTINGS'),
                        help='the arch SRC must hold, e.g. A0 or B1g2 '
                        '(default: the one it holds)')
    parser.add_argument('--to', metavar='FORM',
                        type=package_choice('repvgg_seg.models', 'FORMS'),
                        help='train or deploy: deploy fuses training-form '
                        'weights into one 3x3 conv per block (default: the '
                        'form of SRC)')
    parser.add_argument('--layout', metavar='LAYOUT', default='repvgg-seg',
                        type=package_choice(
                            'repvgg_seg.models.checkpoints', 'LAYOUTS'),
                        help='key names to write: repvgg-seg, official or '
                        'mmpretrain (default: %(default)s)')
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import convert_checkpoint
    from repvgg_seg.utils.text import printable
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
