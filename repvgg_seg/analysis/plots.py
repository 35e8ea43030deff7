"""Benchmark plots: speed against parameters (the RepVGG paper's picture)
and speed against published mIoU (where a model stands in the field)."""
import itertools

from .report import MIN_AGREEMENT, fastest_correct_variants

#: Label offsets tried around a point (points; nearest first), 8 directions.
_DIRECTIONS = [(1, 0.4), (1, -1), (-1, 0.4), (-1, -1), (0, 1), (0, -1.6),
               (1, 1.4), (-1, 1.4)]
_RADII = (5, 12, 20, 30, 42)
#: Marker colour and legend of each family in the mIoU plot.
FAMILY_STYLES = {'repvgg': ('tab:blue', 'PSPNet-RepVGG (ours)'),
                 'rdrnet': ('tab:orange', 'RDRNet (ours)'),
                 'baseline': ('tab:gray', 'MMSeg models')}


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _short(name):
    return name.replace(' (mmseg)', '')


def place_labels(ax, points, labels, **text_kw):
    """Write ``labels`` (``(anchor, text)`` pairs, data coordinates) where
    they overlap neither each other, nor any of ``points`` (the markers),
    nor the axes' edges: each tries offsets at growing distances from its
    anchor and takes the first free one (the farthest, with a line to the
    anchor, if none is). Returns the text artists."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_pixels = ax.transData.transform
    pad = 3  # pixels around each marker
    taken = [(x - pad, y - pad, x + pad, y + pad)
             for x, y in (to_pixels(p) for p in points)]
    frame = ax.get_window_extent(renderer)
    texts = []
    for point, label in sorted(labels, key=lambda pl: pl[0]):
        for radius, (dx, dy) in itertools.product(_RADII, _DIRECTIONS):
            text = ax.annotate(
                label, point, xytext=(dx * radius, dy * radius),
                textcoords='offset points', ha='left' if dx > 0 else
                'right' if dx < 0 else 'center', va='center', **text_kw)
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            bounds = (box.x0, box.y0, box.x1, box.y1)
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and
                      box.y0 >= frame.y0 and box.y1 <= frame.y1)
            if inside and not any(_overlap(bounds, t) for t in taken):
                break
            text.remove()
        else:  # no free place: the farthest, with a line to its point
            text = ax.annotate(label, point, xytext=(dx * radius,
                                                     dy * radius),
                               textcoords='offset points',
                               arrowprops=dict(arrowstyle='-', lw=0.5),
                               **text_kw)
            box = text.get_window_extent(renderer)
            bounds = (box.x0, box.y0, box.x1, box.y1)
        taken.append(bounds)
        texts.append(text)
    return texts


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _fps_error(latency, batch):
    """FPS at the p90 and p10 latency (slower, faster) as error bar
    lengths around the median's FPS."""
    fps = batch * 1e3 / latency['median_ms']
    return [[fps - batch * 1e3 / latency['p90_ms']],
            [batch * 1e3 / latency['p10_ms'] - fps]]


def plot_accuracy(result, path):
    """FPS (log scale) against published mIoU: for each model with one, its
    fused fp32 form (open marker) and fastest fast-path variant (filled),
    joined, with p10-p90 error bars; models without a published mIoU are
    named under the plot. Returns the labels' boxes (pixels)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    fastest = fastest_correct_variants(result)
    points, labels, unknown = [], [], []
    for r in result['records']:
        if r.get('form') != 'fused':
            continue
        miou = r.get('miou')
        if miou is None:
            unknown.append(_short(r['model']))
            continue
        color = FAMILY_STYLES[r['family']][0]
        batch = r.get('batch_size', 1)
        full = r['latency'].get('full', r['latency']['raw'])
        ax.errorbar(r['fps'], miou, xerr=_fps_error(full, batch), fmt='o',
                    mfc='white', mec=color, ecolor=color, capsize=2,
                    zorder=3)
        points.append((r['fps'], miou))
        fast = fastest.get(r['model'])
        if fast:
            ax.errorbar(fast['fps'], miou, xerr=_fps_error(fast, batch),
                        fmt='o', color=color, capsize=2, zorder=3)
            ax.plot([r['fps'], fast['fps']], [miou, miou], color=color,
                    lw=0.8, alpha=0.6)
            points.append((fast['fps'], miou))
        labels.append((((fast or r)['fps'], miou), _short(r['model'])))
    ax.set_xscale('log')
    if points:
        xs, ys = zip(*points)
        ax.set_xlim(min(xs) / 1.35, max(xs) * 1.6)
        ax.set_ylim(min(ys) - 1.0, max(ys) + 0.8)
    env = result['env']
    ax.set_xlabel('FPS (logits -> full-size labels), log scale')
    ax.set_ylabel('published Cityscapes val mIoU (%)')
    ax.set_title(f"{result['title']}\n{env['device']}; torch {env['torch']}"
                 '; open: fp32 fused, filled: fastest fast-path variant '
                 f'(labels >= {MIN_AGREEMENT} % = fp32); bars: p10-p90',
                 fontsize=8)
    ax.grid(alpha=0.3, which='both')
    families = {r.get('family') for r in result['records']}
    handles = [plt.Line2D([], [], marker='o', ls='', color=c, label=text)
               for family, (c, text) in FAMILY_STYLES.items()
               if family in families]
    ax.legend(handles=handles, fontsize=8, loc='best')
    if unknown:
        fig.text(0.01, 0.01, 'No published mIoU (not shown): ' +
                 ', '.join(unknown), fontsize=7)
    fig.tight_layout(rect=(0, 0.03 if unknown else 0, 1, 1))
    texts = place_labels(ax, points, labels, fontsize=7)
    boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in texts]
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return boxes


def plot(result, path):
    """Speed against parameters (the RepVGG paper's picture): training and
    fused form of each RepVGG model joined by an arrow, the fastest
    fast-path variant of each as a star, baselines as squares."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    by_model = {}
    for r in result['records']:
        if 'error' not in r:
            by_model.setdefault(r['model'], {})[r['form']] = r
    for name, forms in by_model.items():
        fused = forms['fused']
        if fused['family'] == 'baseline':
            ax.scatter(fused['params_m'], fused['fps'], marker='s',
                       color='tab:gray', zorder=3)
        else:
            ax.scatter(fused['params_m'], fused['fps'], color='tab:blue',
                       zorder=3)
        if 'training' in forms:
            train = forms['training']
            ax.scatter(train['params_m'], train['fps'], facecolors='none',
                       edgecolors='tab:blue', zorder=3)
            ax.annotate('', (fused['params_m'], fused['fps']),
                        (train['params_m'], train['fps']),
                        arrowprops=dict(arrowstyle='->', color='tab:blue',
                                        alpha=0.5))
        ax.annotate(_short(name), (fused['params_m'], fused['fps']),
                    fontsize=7, xytext=(4, 3), textcoords='offset points')
    fastest = fastest_correct_variants(result)
    for name, r in fastest.items():
        params = by_model[name]['fused']['params_m']
        ax.scatter(params, r['fps'], marker='*', s=120, color='tab:red',
                   zorder=3)
        ax.annotate(f"{_short(name)}\n{r['variant']}",
                    (params, r['fps']), fontsize=6, color='tab:red',
                    xytext=(6, -4), textcoords='offset points')
    handles = [
        plt.Line2D([], [], marker='o', ls='', mfc='none', mec='tab:blue',
                   label='re-parameterized (RepVGG, RDRNet), training '
                   'form'),
        plt.Line2D([], [], marker='o', ls='', color='tab:blue',
                   label='re-parameterized, fused'),
        plt.Line2D([], [], marker='s', ls='', color='tab:gray',
                   label='baseline, conv+BN folded')]
    if fastest:
        handles.append(plt.Line2D([], [], marker='*', ls='', ms=11,
                                  color='tab:red',
                                  label='fastest fast-path variant with '
                                  f'labels >= {MIN_AGREEMENT} % = fp32'))
    ax.legend(handles=handles, fontsize=8)
    env = result['env']
    ax.set_xlabel('parameters (M)')
    ax.set_ylabel('images/s' if result['mode'] == 'imagenet' else
                  'FPS (logits -> full-size labels)')
    ax.set_title(f"{result['title']}\n{env['device']}; circles, squares: "
                 f"{env['precision']}; torch {env['torch']}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
