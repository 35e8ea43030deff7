"""Benchmark results as Markdown: tables, the sections of
``docs/benchmarks.md`` (one per run title, replaced in place)."""
import os.path as osp
import re

from ..utils.markdown import replace_section
from .published import SOURCE_NOTES

#: The paper's ImageNet speed (images/s, 1080Ti, batch 128, fp32), Table 4.
PAPER_SPEED = {'A0': 3256, 'A1': 2339, 'B0': 1817, 'A2': 1322, 'B1g4': 868,
               'B1g2': 792, 'B1': 685, 'B2g4': 581, 'B2': 460, 'B3g4': 464,
               'B3': 363, 'ResNet-18': 2442, 'ResNet-50': 719,
               'ResNet-101': 430}
MD_HEADER = ('# Benchmarks\n\nEvery section below is written by '
             '`tools/benchmark.py` from the JSON of a run (`--out-md`); do '
             'not edit by hand.\n')
#: How to read any fast-path table (rendered with it).
FAST_PATH_READING = [
    'With random weights many pixels are near-ties between two classes, '
    'so agreement there measures rounding (TF32 alone flips ~0.2 %); the '
    'trained model\'s agreement is the accuracy check. relu fuses the '
    'RepVGG blocks and the head\'s ConvModules (a ResNet\'s blocks keep '
    'their ReLU, so baselines gain little from it). An agreement near '
    '0 % means the reduced-precision logits overflowed (fp16 range; bf16 '
    'has fp32\'s): seen with random baselines whose PSP-pooling BN was '
    'calibrated on plain noise (see calibration_images).',
]


#: Fast-path variants whose labels agree less with fp32 are never the best
#: nor plotted, even if not marked wrong. With random weights, fp16 flips
#: near-ties between classes on 0.1-2.5 % of the pixels (rounding, not
#: error); an overflow flips most of them.
MIN_AGREEMENT = 95


def wrong_variants(result):
    """The fast-path records marked wrong (labels more than
    ``measure.MAX_AGREEMENT_DROP`` points below their plain variant's)."""
    return [r for r in result.get('fast_path', []) if r.get('wrong')]


def fastest_correct_variants(result):
    """Per model, its fastest fast-path variant that is not wrong and whose
    labels agree with fp32 on at least :data:`MIN_AGREEMENT` % of the
    pixels: the "best" column and the plots' points."""
    fastest = {}
    for r in result.get('fast_path', []):
        if ('error' not in r and not r.get('wrong') and
                r.get('labels_agree_pct', 0) >= MIN_AGREEMENT and
                r['fps'] > fastest.get(r['model'], {}).get('fps', 0)):
            fastest[r['model']] = r
    return fastest


def tflops(record, latency):
    """Achieved rate: 2 FLOP per multiply-add over the median latency (None
    for records saved without their GMACs)."""
    if 'gmacs' not in record:
        return None
    return (2 * record['gmacs'] * record.get('batch_size', 1) /
            latency['median_ms'])


def _rate(value):
    """FPS and TFLOP/s with three significant digits at least one
    decimal: 302.4, 33.6, 0.481."""
    return '-' if value is None else (f'{value:.1f}' if value >= 10 else
                                      f'{value:.3g}')


def _fmt(value, spec='.1f'):
    return '-' if value is None else format(value, spec)


def _latency_cell(lat):
    return (f"{lat['median_ms']:.2f} [{lat['p10_ms']:.2f}-"
            f"{lat['p90_ms']:.2f}]")


def _table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(r) + ' |' for r in rows])


def _form(record):
    kept = record.get('norms_kept')
    kept = f', {kept} BN kept' if kept else ''
    if record['family'] == 'baseline':
        return 'conv+BN folded' + kept
    return record['form'] + kept


def records_table(result):
    imagenet = result['mode'] == 'imagenet'
    records = [r for r in result['records'] if 'error' not in r]
    reference = next((r for r in records
                      if r['model'] in ('ResNet-50', 'pspnet_r50-d8 (mmseg)')),
                     None)
    with_miou = any('miou' in r for r in records)
    header = ['model', 'form'] + (['mIoU (published)'] if with_miou else [])
    header += ['params (M)', 'GMACs', 'images/s' if imagenet else 'FPS',
               'latency ms [p10-p90]' if imagenet else
               'full latency ms [p10-p90]']
    if not imagenet:
        header += ['raw FPS', 'raw latency ms [p10-p90]']
    header += ['TFLOP/s', 'peak mem (MiB)', 'fused / training',
               'labels fused = unfused (%)']
    if reference:
        header.append(f"x {reference['model'].split(' ')[0]}")
    if imagenet:
        header.append('paper x ResNet-50')
    rows = []
    for r in records:
        lat = r['latency']
        main_latency = lat.get('full', lat['raw'])
        row = [r['model'], _form(r)]
        if with_miou:
            row.append(_fmt(r.get('miou'), '.2f'))
        row += [f"{r['params_m']:.2f}", f"{r['gmacs']:.1f}",
                _rate(r['fps']), _latency_cell(main_latency)]
        if not imagenet:
            row += [_rate(lat['raw']['fps']), _latency_cell(lat['raw'])]
        agree = r.get('vs_training', {}).get('labels_agree_pct')
        row += [_rate(tflops(r, lat['raw'])), _fmt(r['peak_mem_mib'], '.0f'),
                _fmt(r.get('speedup_vs_training'), '.2f'),
                _fmt(agree, '.3f')]
        if reference:
            row.append(f"{r['fps'] / reference['fps']:.2f}")
        if imagenet:
            paper = r.get('paper_images_per_s')
            row.append('-' if paper is None or r['form'] == 'training' else
                       f"{paper / PAPER_SPEED['ResNet-50']:.2f}")
        rows.append(row)
    return _table(header, rows)


def failures_table(result):
    """Models that could not be measured at all, with the reason."""
    failed = [r for r in result['records'] if 'error' in r]
    return failed and _table(['model', 'failed'], [
        [r['model'], r['error']] for r in failed])


def _verdict(record):
    """``ok (-0.12)`` or ``WRONG (-68.20)``: points of label agreement
    against the plain variant (``-`` for older runs and the plain one)."""
    reference = record.get('plain_agree_pct')
    if reference is None or record.get('plain_variant') == record['variant']:
        return '-'
    drop = f"{record['labels_agree_pct'] - reference:+.2f}"
    return (f"**WRONG** ({drop} vs {record['plain_variant']})"
            if record.get('wrong') else f'ok ({drop})')


def best_table(result):
    """Per model, the fastest correct fast-path variant (see
    :func:`fastest_correct_variants`)."""
    miou = {r['model']: r.get('miou') for r in result['records']}
    rows = [[model, r['variant'], _rate(r['fps']),
             f"{r['labels_agree_pct']:.3f}", _fmt(miou.get(model), '.2f')]
            for model, r in fastest_correct_variants(result).items()]
    return rows and _table(['model', 'best correct variant', 'FPS',
                            'labels = fp32 (%)', 'mIoU (published)'], rows)


def fast_path_table(result, peak_tflops=None):
    header = ['model', 'variant', 'FPS', 'latency ms [p10-p90]', 'setup (s)',
              'TFLOP/s', 'labels = fp32 (%)', 'vs plain variant',
              'x training form']
    if peak_tflops:
        header.append(f'% of {peak_tflops:.0f} TFLOP/s')
    rows = []
    for r in result['fast_path']:
        if 'error' in r:
            rows.append([r['model'], r['variant'], 'failed: ' + r['error']]
                        + [''] * (len(header) - 3))
            continue
        row = [r['model'], r['variant'], _rate(r['fps']),
               _latency_cell(r), f"{r['setup_s']:.1f}",
               _rate(tflops(r, r)), f"{r['labels_agree_pct']:.3f}",
               _verdict(r), _fmt(r.get('speedup_vs_training'), '.2f')]
        if peak_tflops:
            rate = tflops(r, r)
            row.append(_fmt(rate and 100 * rate / peak_tflops, '.0f'))
        rows.append(row)
    return _table(header, rows)


def _relative(path, md_dir):
    return osp.relpath(path, md_dir) if md_dir else path


def to_markdown(result, plot_paths=(), md_dir=None):
    """One section of ``docs/benchmarks.md``: provenance, tables, plots."""
    env = result['env']
    lines = [f"## {result['title']}", '',
             f"Command: `{result['command']}`", '',
             f"Device: {env['device']}; torch {env['torch']}"
             + (f", CUDA {env['cuda']}, cuDNN {env['cudnn']}"
                if 'cuda' in env else f", {env['threads']} threads"
                + (f", load average {env['load_average']:.1f} at the start"
                   if 'load_average' in env else ''))
             + f"; mmseg {env['mmseg']}; precision {env['precision']}; "
             f"{env['date']}.", '']
    if env.get('fp16_matmul_tflops'):
        lines += [f"Measured fp16 matmul ceiling (8192^3): "
                  f"{env['fp16_matmul_tflops']} TFLOP/s.", '']
    lines += [records_table(result), '']
    failures = failures_table(result)
    if failures:
        lines += ['Not measured:', '', failures, '']
    lines += [f'- {note}' for note in result['notes']]
    sources = sorted({r['miou_source'] for r in result['records']
                      if r.get('miou_source') in SOURCE_NOTES})
    lines += [f'- mIoU from the {SOURCE_NOTES[s]}.' for s in sources] + ['']
    if result.get('fast_path'):
        lines += ['### Fast inference path (`repvgg_seg.deploy.fast_path`)',
                  '',
                  fast_path_table(result, result.get('peak_tflops')), '']
        best = best_table(result)
        if best:
            lines += ['Best correct variant per model (never a wrong one):',
                      '', best, '']
        lines += [f'- {n}' for n in result['fast_path_notes']
                  + FAST_PATH_READING] + ['']
    for name, profile in result.get('profiles', {}).items():
        lines += [f'<details><summary>Kernel profile of {name}</summary>', '',
                  '```', profile, '```', '</details>', '']
    for path in plot_paths:
        lines += [f'![{result["title"]}]({_relative(path, md_dir)})', '']
    return '\n'.join(lines)


def section_markers(title):
    slug = re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')
    return (f'<!-- benchmark:{slug}:start -->',
            f'<!-- benchmark:{slug}:end -->')


def update_markdown(path, title, section):
    """Write ``section`` into ``path`` between markers derived from
    ``title``: replaced if there, else appended (the file is created)."""
    start, end = section_markers(title)
    replace_section(path, start, end, section, header=MD_HEADER)
