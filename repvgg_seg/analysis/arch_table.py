"""Parameters and FLOPs of the RepVGG archs next to the paper's numbers, and
the README table made from them (``tools/analyze_archs.py``).

The paper reports the ImageNet classifier (backbone + global average pool +
1000-way fc) in its fused form; we count that model in training form too, to
show what re-parameterization removes.
"""
import torch

import os.path as osp

from ..utils.errors import PathNotFound
from ..utils.markdown import MarkersMissing, has_section, replace_section
from .candidates import repvgg_classifier
from .complexity import count_complexity

#: Fused classifier: (params in M, GFLOPs as multiply-adds at 224x224), from
#: the ImageNet tables of Ding et al., "RepVGG: Making VGG-style ConvNets
#: Great Again", CVPR 2021. The paper truncates params and rounds FLOPs.
PAPER_NUMBERS = {
    'A0': (8.30, 1.4),
    'A1': (12.78, 2.4),
    'B0': (14.33, 3.1),
    'A2': (25.49, 5.1),
    'B1g4': (36.12, 7.3),
    'B1g2': (41.36, 8.8),
    'B1': (51.82, 11.8),
    'B2g4': (55.77, 11.3),
    'B2': (80.31, 18.4),
    'B3g4': (75.62, 16.1),
    'B3': (110.96, 26.2),
}
TABLE_START, TABLE_END = '<!-- arch-table:start -->', '<!-- arch-table:end -->'
HEADER = ('arch', 'params train-form (M)', 'params fused (M)',
          'GFLOPs train-form', 'GFLOPs fused', 'paper params (M)',
          'paper GFLOPs')


def count_params(arch, deploy=False):
    """Parameters of the classifier, built on the meta device: the count
    needs no memory or initialisation, which matters for B3 and D2se."""
    with torch.device('meta'):
        model = repvgg_classifier(arch, deploy=deploy)
    return count_complexity(model)['params']


def count_gflops(arch, deploy=False, input_size=224):
    """GFLOPs (multiply-adds, as the paper counts) of one image; BN layers
    count in training form."""
    model = repvgg_classifier(arch, deploy=deploy).eval()
    inputs = torch.zeros(1, 3, input_size, input_size)
    return count_complexity(model, inputs)['macs'] / 1e9


def arch_stats(arch, input_size=224):
    """Counts of ``arch`` in training and fused form, next to the paper's."""
    paper_params, paper_gflops = PAPER_NUMBERS.get(arch, (None, None))
    return dict(
        arch=arch,
        params_train=count_params(arch),
        params_fused=count_params(arch, deploy=True),
        gflops_train=count_gflops(arch, input_size=input_size),
        gflops_fused=count_gflops(arch, deploy=True, input_size=input_size),
        paper_params=paper_params,
        paper_gflops=paper_gflops)


def truncated_millions(count):
    """``count`` in millions truncated to 2 decimals, the paper's rounding."""
    return count // 10_000 / 100


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


def update_arch_table(archs, input_size=224, markdown=False, readme=None):
    """The table of ``archs`` (plain text, or Markdown), returned; with
    ``readme``, also written between its ``arch-table`` markers, which must
    be there (checked before the slow counting)."""
    if readme and not osp.isfile(readme):
        raise PathNotFound(f'{readme} does not exist: give the README that '
                           f'holds the {TABLE_START} markers')
    if readme and not has_section(readme, TABLE_START, TABLE_END):
        raise MarkersMissing(f'{readme} has no {TABLE_START} ... {TABLE_END} '
                             'markers: add them where the table should go')
    rows = table_rows([arch_stats(arch, input_size) for arch in archs])
    if readme:
        replace_section(readme, TABLE_START, TABLE_END,
                        format_table(rows, True, input_size), missing='error')
    return format_table(rows, markdown, input_size)
