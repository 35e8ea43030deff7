"""Training speed: ms/iter, images/s, data_time share and peak memory of a
full SGD step (data preprocessor, forward, backward, optimizer) for our
configs and MMSeg baselines, in NCHW vs channels_last and fp32 / fp16 /
bf16, in one process on one device, so the ratios are side by side.

``tools/benchmark_train.py`` is the command line. Batches come either from
the config's own train pipeline (``data_root``: decoding, random resize,
crop, flip, photometric distortion in the config's dataloader workers) or
are random crops made once (the pure GPU step). Real ``tools/train.py``
runs are summarised from their ``vis_data/scalars.json``
(:func:`summarize_train_log`).
"""
import copy
import glob
import json
import os.path as osp
import re
import statistics
import time

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from ..engine import speed_up_training
from .candidates import baseline_config
from .timing import environment
from ..utils import atomic_write, read_config, replace_section
from ..utils.errors import InvalidArgument, PathNotFound

#: variant -> (channels_last, autocast dtype or None for fp32).
VARIANTS = {
    'nchw-fp32': (False, None),
    'cl-fp32': (True, None),
    'nchw-fp16': (False, 'float16'),
    'cl-fp16': (True, 'float16'),
    'cl-bf16': (True, 'bfloat16'),
    'nchw-bf16': (False, 'bfloat16'),
}
DEFAULT_VARIANTS = ('nchw-fp16', 'cl-fp16', 'cl-bf16')
SECTION = '<!-- benchmark:training-{}:{} -->'


def load_train_config(name, data_root=None, batch_size=2):
    """The config without pretrained weights (none exist offline), its
    train dataloader pointed at ``data_root`` with ``batch_size``."""
    cfg = read_config(baseline_config(name))
    # MMSeg's configs name their modules in the mmseg scope (the Runner
    # sets it; here the models are built without one)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    cfg.train_dataloader.batch_size = batch_size
    if data_root is not None:
        if not osp.isdir(data_root):
            raise PathNotFound(f'data root {data_root} does not exist: make '
                               'it with tools/make_citymini.py and '
                               'tools/prepare_cityscapes.py')
        cfg.train_dataloader.dataset.data_root = data_root
    return cfg


def random_batches(cfg, batch_size, num=4, seed=0):
    """``num`` batches of random crops (uint8 images, labels 0..18) the
    size of the config's crop, as the train pipeline hands them over."""
    height, width = cfg.model.data_preprocessor.size
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num):
        inputs, samples = [], []
        for _ in range(batch_size):
            inputs.append(torch.randint(0, 256, (3, height, width),
                                        generator=gen, dtype=torch.uint8))
            labels = torch.randint(0, 19, (1, height, width), generator=gen)
            sample = SegDataSample(metainfo=dict(
                img_shape=(height, width), ori_shape=(height, width)))
            sample.gt_sem_seg = PixelData(data=labels)
            samples.append(sample)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def _cycle(batches):
    while True:
        yield from batches


def _build(cfg, variant, device):
    channels_last, dtype = VARIANTS[variant]
    model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model)))
    model.init_weights()
    model.to(device).train()
    if channels_last:
        speed_up_training(model)
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    if dtype is not None:
        wrapper_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic',
                           dtype=dtype)
    return model, build_optim_wrapper(model, wrapper_cfg)


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(cfg, variant, batches, device, warmup=10, iters=30):
    """Time ``iters`` train steps after ``warmup``: each from asking the
    data iterator for a batch to the step's end on the device (as
    tools/train.py, which syncs every iteration to log the losses)."""
    if variant not in VARIANTS:
        raise InvalidArgument(f'unknown variant {variant}: choose from '
                              f'{", ".join(VARIANTS)}')
    model, optim_wrapper = _build(cfg, variant, device)
    for _ in range(warmup):
        model.train_step(next(batches), optim_wrapper)
    _sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    step_s, data_s = [], []
    for _ in range(iters):
        start = time.perf_counter()
        batch = next(batches)
        loaded = time.perf_counter()
        losses = model.train_step(batch, optim_wrapper)
        _sync(device)
        end = time.perf_counter()
        step_s.append(end - start)
        data_s.append(loaded - start)
    # mmengine's summed 'loss' still requires grad (float() of it warns)
    loss = float(torch.as_tensor(losses['loss'] if 'loss' in losses else sum(
        v for k, v in losses.items() if 'loss' in k)).detach())
    row = dict(variant=variant, iters=iters, warmup=warmup,
               ms_per_iter=1e3 * statistics.median(step_s),
               mean_ms_per_iter=1e3 * statistics.fmean(step_s),
               images_per_s=len(batch['inputs']) / statistics.fmean(step_s),
               data_time_share=sum(data_s) / sum(step_s),
               final_loss=loss)
    if device.type == 'cuda':
        row['peak_memory_mib'] = (torch.cuda.max_memory_allocated(device)
                                  / 2**20)
    del model, optim_wrapper
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return row


def run(configs, variants=DEFAULT_VARIANTS, device='cuda', batch_size=2,
        data_root=None, warmup=10, iters=30, num_workers=None):
    """Every config x variant; one data iterator per config, shared by its
    variants (the dataloader workers start once)."""
    device = torch.device(device)
    torch.backends.cudnn.benchmark = True
    rows = []
    for name in configs:
        cfg = load_train_config(name, data_root, batch_size)
        if num_workers is not None:
            cfg.train_dataloader.num_workers = num_workers
            cfg.train_dataloader.persistent_workers = num_workers > 0
        if data_root is not None:
            batches = iter(Runner.build_dataloader(cfg.train_dataloader))
            pipeline = 'config train pipeline'
        else:
            batches = _cycle(random_batches(cfg, batch_size))
            pipeline = 'random crops, made once'
        for variant in variants:
            row = measure(cfg, variant, batches, device, warmup, iters)
            row.update(model=_short_name(name), config=baseline_config(name),
                       batch_size=batch_size, pipeline=pipeline,
                       crop=list(cfg.model.data_preprocessor.size),
                       num_workers=cfg.train_dataloader.get('num_workers'))
            rows.append(row)
        del batches
    return dict(env=environment(device, "mixed"), rows=rows)


def _short_name(name):
    """The config's name up to its GPUs x batch (``_4xb2``, ``_2xb6``)."""
    base = osp.splitext(osp.basename(baseline_config(name)))[0]
    return re.split(r'_\d+xb\d+', base)[0] + (
        ' (mmseg)' if 'mmseg::' in baseline_config(name) else '')


def summarize_train_log(path, skip=50):
    """s/iter, data_time and peak memory of a real ``tools/train.py`` run
    from its ``scalars.json`` (a path to it or to a work_dir), leaving out
    the first ``skip`` iterations (cuDNN autotuning, worker start)."""
    if osp.isdir(path):
        found = sorted(glob_scalars(path))
        if not found:
            raise PathNotFound(f'no vis_data/scalars.json under {path}')
        path = found[-1]
    entries = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            entry = json.loads(line)
            if 'time' in entry and 'data_time' in entry \
                    and entry.get('iter', 0) > skip:
                entries.append(entry)
    if not entries:
        raise InvalidArgument(f'{path} has no training iterations after '
                              f'the first {skip}')
    times = [e['time'] for e in entries]
    data = [e['data_time'] for e in entries]
    return dict(first_iter=entries[0]['iter'], last_iter=entries[-1]['iter'],
                s_per_iter=statistics.fmean(times),
                data_time_s=statistics.fmean(data),
                data_time_share=sum(data) / sum(times),
                peak_memory_mib=max(e.get('memory', 0) for e in entries))


def glob_scalars(work_dir):
    return glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))


# ---- reporting --------------------------------------------------------------
def to_markdown(result, title, command, train_logs=None):
    env = result['env']
    lines = [f'## {title}', '', f'Command: `{command}`', '',
             f"Device: {env['device']}; torch {env['torch']}"
             + (f", CUDA {env['cuda']}, cuDNN {env['cudnn']}"
                if 'cuda' in env else '')
             + f"; mmseg {env['mmseg']}; {env['date']}.", '',
             '| model | variant | batch | ms/iter | images/s | data_time '
             'share | peak mem (MiB) | vs nchw-fp16 |',
             '|---|---|---|---|---|---|---|---|']
    reference = {r['model']: r['ms_per_iter'] for r in result['rows']
                 if r['variant'] == 'nchw-fp16'}
    for r in result['rows']:
        ref = reference.get(r['model'])
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['batch_size']} | "
            f"{r['ms_per_iter']:.1f} | {r['images_per_s']:.1f} | "
            f"{100 * r['data_time_share']:.1f}% | "
            f"{r.get('peak_memory_mib', float('nan')):.0f} | "
            + (f"{ref / r['ms_per_iter']:.2f}x |" if ref else '- |'))
    rows = result['rows']
    if rows:
        crop = 'x'.join(map(str, rows[0]['crop']))
        lines += ['', f'- One train step per iteration: data preprocessor, '
                  f'forward, loss, backward, SGD step, {crop} crops; median '
                  f'of {rows[0]["iters"]} iterations after '
                  f'{rows[0]["warmup"]} warm-up ones, the device synchronised '
                  'after each (as tools/train.py, which logs every loss); '
                  'images/s from the mean.',
                  f'- Batches: {rows[0]["pipeline"]}; data_time share = time '
                  'waiting for the next batch / iteration time. SyncBN runs '
                  'as BN (one process). cudnn.benchmark on. Random weights.',
                  '- Variants: nchw = default layout, cl = channels_last '
                  '(ChannelsLastHook: NHWC, pooling as matrix products, '
                  'decode losses without host syncs); fp16/bf16 = mmengine '
                  'AmpOptimWrapper (autocast, dynamic loss scale); fp32 = '
                  'TF32 convs.',
                  '- Peak memory: torch.cuda.max_memory_allocated over the '
                  'timed iterations (weights, gradients, optimizer state, '
                  'activations).']
    if train_logs:
        lines += ['', 'Real `tools/train.py` runs (mmengine log, '
                  '`vis_data/scalars.json`):', '',
                  '| run | iterations | s/iter | data_time (s) | data_time '
                  'share | memory (MiB) |', '|---|---|---|---|---|---|']
        for name, summary in train_logs.items():
            lines.append(
                f"| {name} | {summary['first_iter']}-{summary['last_iter']} "
                f"| {summary['s_per_iter']:.4f} | "
                f"{summary['data_time_s']:.4f} | "
                f"{100 * summary['data_time_share']:.1f}% | "
                f"{summary['peak_memory_mib']:.0f} |")
        for name, summary in train_logs.items():
            if summary.get('command'):
                lines.append(f'\n{name}: `{summary["command"]}`')
    return '\n'.join(lines) + '\n'


def slug(title):
    return re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')


def report(result, title, command, out=None, out_md=None, train_logs=(),
           skip=50):
    """Write the JSON (``out``) and the Markdown section of ``title`` in
    ``out_md``; ``train_logs``: ``NAME=SCALARS_JSON[=COMMAND]`` strings of
    real runs to summarise next to it (after their first ``skip``
    iterations). Returns the Markdown."""
    logs = {}
    for spec in train_logs:
        name, _, rest = spec.partition('=')
        path, _, run_command = rest.partition('=')
        if not path:
            raise InvalidArgument(f'--train-log {spec}: use NAME=PATH')
        logs[name] = dict(summarize_train_log(path, skip),
                          command=run_command)
    result = dict(result, title=title, command=command, train_logs=logs)
    markdown = to_markdown(result, title, command, logs)
    if out:
        atomic_write(json.dumps(result, indent=1), out, mode='w',
                     encoding='utf-8')
    if out_md:
        name = slug(title)
        replace_section(out_md, SECTION.format(name, 'start'),
                        SECTION.format(name, 'end'), markdown)
    return markdown


def load_result(path):
    """A result :func:`run_training_benchmark` saved (``--out``)."""
    if not osp.isfile(path):
        raise PathNotFound(f'{path} does not exist')
    with open(path, encoding='utf-8') as f:
        try:
            result = json.load(f)
        except ValueError as exc:
            result = exc
    if not isinstance(result, dict) or 'command' not in result:
        raise InvalidArgument(f'{path} is not a training benchmark JSON: '
                              'give the --out file of a '
                              'tools/benchmark_train.py run')
    return result
