"""Print parameters and FLOPs of the RepVGG archs next to the paper's numbers.

    python tools/analyze_archs.py [--archs A0 B1g2] [--input-size 224]
                                  [--markdown] [--update-readme README.md]

``--update-readme`` rewrites the table between the ``arch-table`` markers of
the README, so the published numbers always come from the code.
"""
import argparse
import os.path as osp
import sys

from repvgg_seg.models import ARCH_SETTINGS
from repvgg_seg.models.analysis import arch_stats, truncated_millions

TABLE_START, TABLE_END = '<!-- arch-table:start -->', '<!-- arch-table:end -->'
HEADER = ('arch', 'params train-form (M)', 'params fused (M)',
          'GFLOPs train-form', 'GFLOPs fused', 'paper params (M)',
          'paper GFLOPs')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', choices=list(ARCH_SETTINGS),
                        default=list(ARCH_SETTINGS), metavar='ARCH',
                        help=f'default: all of {", ".join(ARCH_SETTINGS)}')
    parser.add_argument('--input-size', type=int, default=224,
                        help='square input side for FLOPs (paper: 224)')
    parser.add_argument('--markdown', action='store_true',
                        help='print a Markdown table instead of plain text')
    parser.add_argument('--update-readme', metavar='README',
                        help='replace the table between the arch-table '
                        'markers of this file (created if missing)')
    return parser.parse_args(argv)


def table_rows(stats):
    """Cells as the paper writes them: params truncated, FLOPs rounded."""
    def paper(value, fmt):
        return '-' if value is None else format(value, fmt)

    return [(s['arch'], f"{truncated_millions(s['params_train']):.2f}",
             f"{truncated_millions(s['params_fused']):.2f}",
             f"{s['gflops_train']:.2f}", f"{s['gflops_fused']:.2f}",
             paper(s['paper_params'], '.2f'), paper(s['paper_gflops'], '.1f'))
            for s in stats]


def format_table(rows, markdown, input_size):
    widths = [max(len(r[i]) for r in [HEADER] + rows)
              for i in range(len(HEADER))]

    def line(cells):
        padded = [c.ljust(w) for c, w in zip(cells, widths)]
        if markdown:
            return f"| {' | '.join(padded)} |"
        return '  '.join(padded).rstrip()

    rule = ['-' * w for w in widths]
    note = (f'Classifier form (backbone + global pool + 1000-way fc); '
            f'GFLOPs = multiply-adds at {input_size}x{input_size} '
            '(mmengine FlopAnalyzer); params truncated to 2 decimals as in '
            'the paper (Ding et al., CVPR 2021).')
    return '\n'.join([line(HEADER), line(rule)] + [line(r) for r in rows] +
                     ['', note])


class MarkersMissing(ValueError):
    """A README without the arch-table markers."""


def read_readme(path):
    """The README text; a missing README becomes a stub holding only the
    markers."""
    if not osp.exists(path):
        return f'{TABLE_START}\n{TABLE_END}\n'
    with open(path, encoding='utf-8') as f:
        text = f.read()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise MarkersMissing(f'{path} has no {TABLE_START} ... {TABLE_END} '
                             'markers: add them where the table should go')
    return text


def update_readme(path, table):
    """Put ``table`` between the markers of the README as it is now (read
    again here: others may edit it while the counts run)."""
    text = read_readme(path)
    start = text.index(TABLE_START) + len(TABLE_START)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(f'{text[:start]}\n{table}\n{text[text.index(TABLE_END):]}')


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.update_readme:
            read_readme(args.update_readme)  # fail before the slow counting
        rows = table_rows([arch_stats(arch, args.input_size)
                           for arch in args.archs])
        print(format_table(rows, args.markdown, args.input_size))
        if args.update_readme:
            update_readme(args.update_readme,
                          format_table(rows, True, args.input_size))
    except MarkersMissing as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
