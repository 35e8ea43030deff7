"""Print parameters and FLOPs of the RepVGG archs next to the paper's numbers.

    python tools/analyze_archs.py [--archs A0 B1g2] [--input-size 224]
                                  [--markdown] [--update-readme README.md]

``--update-readme`` rewrites the table between the ``arch-table`` markers of
the README, so the published numbers always come from the code.
"""
import argparse

from repvgg_seg_cli import bounded, input_file, package_choice, run_cli

#: Input sides RepVGG takes: its five stride-2 stages need 32 pixels.
MIN_SIDE, MAX_SIDE = 32, 8192


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', metavar='ARCH',
                        type=package_choice('repvgg_seg.models',
                                            'ARCH_SETTINGS'),
                        help='RepVGG archs, e.g. A0 B1g2 (default: every arch '
                        'of the family; a wrong name lists them)')
    parser.add_argument('--input-size', default=224,
                        type=bounded(int, MIN_SIDE, MAX_SIDE, 'a side'),
                        help=f'square input side for FLOPs, {MIN_SIDE}..'
                        f'{MAX_SIDE} (paper: 224)')
    parser.add_argument('--markdown', action='store_true',
                        help='print a Markdown table instead of plain text')
    parser.add_argument('--update-readme', metavar='README',
                        type=input_file('README', ('.md', )),
                        help='replace the table between the arch-table '
                        'markers of this file (which must have them)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import update_arch_table
    from repvgg_seg.models import ARCH_SETTINGS
    print(update_arch_table(args.archs or list(ARCH_SETTINGS),
                            args.input_size, args.markdown,
                            args.update_readme))
    return 0


if __name__ == '__main__':
    run_cli(main)
