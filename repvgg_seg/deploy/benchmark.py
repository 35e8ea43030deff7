"""Speed of RepVGG models in training and fused form next to MMSeg's ResNet
PSPNets (or, ``imagenet`` mode, ResNet classifiers), measured in one process
on one device at one input, so the ratios are comparable.

``tools/benchmark.py`` is the command line; this module measures
(:func:`run_segmentation`, :func:`run_imagenet`), renders (:func:`to_markdown`,
:func:`plot`) and files the results (:func:`update_markdown`).
"""
import contextlib
import copy
import ctypes
import datetime
import functools
import gc
import glob
import os
import importlib.util
import os.path as osp
import platform
import re
import time

import numpy as np
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from torch.nn.modules.batchnorm import _BatchNorm

import mmseg
from mmseg.registry import MODELS
from ..apis.inference import init_segmentor
from ..models import RepVGG
from ..models.analysis import PAPER_NUMBERS, RepVGGClassifier
from .fast_path import (logits_to_labels, optimize_for_inference,
                        parse_variant, variant_name)
from .fuse import fuse_model

#: MMSeg's own PSPNets, by the short names ``--baseline`` takes.
BASELINE_CONFIG = 'mmseg::pspnet/{}_4xb2-80k_cityscapes-512x1024.py'
#: The paper's ImageNet speed (images/s, 1080Ti, batch 128, fp32), Table 4.
PAPER_SPEED = {'A0': 3256, 'A1': 2339, 'B0': 1817, 'A2': 1322, 'B1g4': 868,
               'B1g2': 792, 'B1': 685, 'B2g4': 581, 'B2': 460, 'B3g4': 464,
               'B3': 363, 'ResNet-18': 2442, 'ResNet-50': 719,
               'ResNet-101': 430}
RESNET_DEPTHS = (18, 50, 101)
DEFAULT_AGREEMENT_IMAGES = 'data/citymini/leftImg8bit/val/*/*.png'
MD_HEADER = ('# Benchmarks\n\nEvery section below is written by '
             '`tools/benchmark.py` from the JSON of a run (`--out-md`); do '
             'not edit by hand.\n')


# ---- measuring --------------------------------------------------------------
def time_ms(calls, device, warmup, repeat):
    """Latencies (ms) of each of ``calls`` (name -> function), called in
    turn ``repeat`` times after ``warmup`` rounds, so that a drifting load
    (shared CPUs) or clock hits every one alike: CUDA events around each
    call on a GPU, ``perf_counter`` on the CPU."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    if device.type != 'cuda':
        for _ in range(repeat):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - start) * 1e3)
        return times
    torch.cuda.synchronize(device)
    events = []
    for _ in range(repeat):
        for name, call in calls.items():
            start, end = (torch.cuda.Event(enable_timing=True)
                          for _ in range(2))
            start.record()
            call()
            end.record()
            events.append((name, start, end))
    torch.cuda.synchronize(device)
    for name, start, end in events:
        times[name].append(start.elapsed_time(end))
    return times


def summarize(times_ms, batch_size):
    p10, median, p90 = np.percentile(times_ms, [10, 50, 90])
    return dict(median_ms=float(median), p10_ms=float(p10),
                p90_ms=float(p90), fps=batch_size * 1e3 / float(median))


def _proc_status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])


@contextlib.contextmanager
def peak_memory(device):
    """Memory at the peak of the block beyond what was held before it
    (activations and workspaces, not the weights), in MiB, set as
    ``result['mib']``: CUDA's allocator statistics on a GPU; on Linux CPUs
    the peak RSS (reset through ``/proc/self/clear_refs``) after glibc gave
    freed memory back (else reused memory would not count); else None."""
    result = dict(mib=None)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result['mib'] = (torch.cuda.max_memory_allocated(device) -
                         before) / 2**20
        return
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL('libc.so.6').malloc_trim(0)  # give freed memory back
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak RSS to the current RSS
        before = _proc_status_kib('VmRSS')
    except OSError:
        yield result
        return
    yield result
    result['mib'] = (_proc_status_kib('VmHWM') - before) / 1024


class _TensorMode(nn.Module):
    """A segmentor's ``mode='tensor'`` forward, for FlopAnalyzer."""

    def __init__(self, segmentor):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs):
        return self.segmentor(inputs, mode='tensor')


@torch.no_grad()
def count_gmacs(module, inputs):
    """Multiply-adds per image (mmengine's FlopAnalyzer, which counts one
    per multiply-add: the paper's "FLOPs"), in billions."""
    analyzer = FlopAnalyzer(module, (inputs, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer.total() / 1e9 / inputs.shape[0]


def has_norms(model):
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def calibration_images(shape, seed=0):
    """Random normalised images whose brightness and contrast vary per image
    and channel. With plain noise every image has the same means, so a BN
    after a global pooling (PSP's 1x1 bin) measures a variance of ~0 and
    scales by ~1/sqrt(eps): fp16 then overflows."""
    gen = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    return (torch.randn(shape, generator=gen) *
            (0.5 + torch.rand(n, c, 1, 1, generator=gen)) +
            0.5 * torch.randn(n, c, 1, 1, generator=gen))


@torch.no_grad()
def randomize_norms(model, forward, inputs, seed=0):
    """Random BN affine parameters, and running statistics measured on
    ``inputs`` as training leaves them: fusion then folds non-trivial
    statistics, and activations keep a trained network's scale (which
    fp16 needs)."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for m in norms:
        m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
        m.reset_running_stats()
        m.momentum = None  # running stats = plain average of the batches
    model.train()
    forward(model, inputs)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def peak_matmul_tflops(device, dtype=torch.float16, size=8192, repeat=10):
    """The device's achievable dense matrix rate (one large matmul), the
    ceiling that model rates are compared with."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype)
            for _ in range(2))
    median = np.median(time_ms(dict(mm=lambda: a @ b), device, 3,
                               repeat)['mm'])
    return 2 * size**3 / (median * 1e-3) / 1e12


def environment(device, precision):
    env = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%d %H:%M UTC'),
        torch=torch.__version__, mmseg=mmseg.__version__,
        python=platform.python_version(), precision=precision)
    if device.type == 'cuda':
        env.update(
            device=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            conv_tf32=torch.backends.cudnn.allow_tf32,
            fp16_matmul_tflops=round(peak_matmul_tflops(device), 1))
    else:
        env.update(device=_cpu_name(), threads=torch.get_num_threads(),
                   load_average=os.getloadavg()[0])
    return env


def _cpu_name():
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return f"CPU: {line.split(':', 1)[1].strip()}"
    return f'CPU: {platform.processor()}'


def _cast_context(device, fp16):
    return torch.autocast(device.type, torch.float16, enabled=fp16)


def _strict_fp32():
    """cuDNN without TF32, so that fp32 results differ by rounding only."""
    return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)


@torch.inference_mode()
def agreement(model, fused, forward, inputs, fp16):
    """Fused vs training form on ``inputs`` (fp32 without TF32, or fp16
    autocast): largest logit difference relative to the largest logit,
    and the share of equal argmax labels (a near-tie may flip)."""
    with _cast_context(inputs.device, fp16), _strict_fp32():
        expected, actual = (forward(m, inputs).float() for m in (model, fused))
    rel = ((actual - expected).abs().max() / expected.abs().max()).item()
    same = (actual.argmax(1) == expected.argmax(1)).float().mean().item()
    return dict(logits_max_rel_diff=rel, labels_agree_pct=100 * same)


def inference_params(model):
    """Parameters in millions, the auxiliary head (training only) left out."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.startswith('auxiliary_head.')) / 1e6


def measure_forms(name, family, model, forwards, inputs, args, gmacs_of):
    """Records of ``model`` fused and, for RepVGG models that have BN, in
    training form: the latency of each of ``forwards`` (name ->
    ``fn(model, inputs)``; the forms timed in turn, see :func:`time_ms`),
    the peak memory of a call of the last one, and ``gmacs_of(model)``."""
    fused = fuse_model(copy.deepcopy(model))
    forms = {'fused': fused}
    if family == 'repvgg' and has_norms(model):
        forms = {'training': model, 'fused': fused}
    device, batch = inputs.device, inputs.shape[0]
    last = list(forwards.values())[-1]
    gmacs = {form: gmacs_of(m) for form, m in forms.items()}
    records = []
    with torch.inference_mode(), _cast_context(device, args.fp16):
        times = time_ms({(form, fwd): functools.partial(forward, m, inputs)
                         for form, m in forms.items()
                         for fwd, forward in forwards.items()},
                        device, args.warmup, args.repeat)
        for form, m in forms.items():
            with peak_memory(device) as memory:
                last(m, inputs)
            latency = {fwd: summarize(times[form, fwd], batch)
                       for fwd in forwards}
            records.append(dict(
                model=name, family=family, form=form,
                params_m=inference_params(m), gmacs=gmacs[form],
                latency=latency, fps=latency[list(forwards)[-1]]['fps'],
                batch_size=batch, peak_mem_mib=memory['mib']))
    if len(records) == 2:
        records[1]['speedup_vs_training'] = (records[1]['fps'] /
                                             records[0]['fps'])
        records[1]['vs_training'] = agreement(
            model, fused, next(iter(forwards.values())), inputs, args.fp16)
    return records, fused


# ---- segmentation -----------------------------------------------------------
def _tensor_forward(model, inputs):
    return model(inputs, mode='tensor')


def _labels_forward(model, inputs):
    return logits_to_labels(model(inputs, mode='tensor'), inputs.shape[2:],
                            model.decode_head.align_corners)


SEG_FORWARDS = dict(raw=_tensor_forward, full=_labels_forward)


def config_of(path):
    """A Config from a file or an ``mmseg::`` path (MMSeg's own configs)."""
    if path.startswith('mmseg::'):
        path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                        path[len('mmseg::'):])
    return Config.fromfile(path)


def baseline_config(name):
    return name if name.endswith('.py') else BASELINE_CONFIG.format(name)


def with_arch(cfg, arch):
    """``cfg`` with another RepVGG arch, its heads' input channels matched
    (decode head: last stage, auxiliary head: the one before)."""
    cfg = copy.deepcopy(cfg)
    with torch.device('meta'):
        channels = RepVGG(arch=arch).out_channels
    cfg.model.backbone.arch = arch
    cfg.model.decode_head.in_channels = channels[-1]
    if cfg.model.get('auxiliary_head'):
        cfg.model.auxiliary_head.in_channels = channels[-2]
    return cfg


def _untrained(cfg):
    """No pretrained weights are read: speed does not depend on them."""
    cfg = copy.deepcopy(cfg)
    cfg.model.pretrained = None
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    return cfg


def _family(cfg):
    return 'repvgg' if cfg.model.backbone.type == 'RepVGG' else 'baseline'


def segmentor_candidates(args):
    """``(name, family, config, checkpoint)`` of every model to measure:
    CONFIG (or its ``--sweep`` archs), then the ``--baseline`` ones."""
    stem = osp.splitext(osp.basename(args.config))[0]
    cfg = config_of(args.config)
    if args.sweep:
        found = [(re.sub(r'repvgg_[a-z0-9]+', f'repvgg_{arch.lower()}',
                         stem), with_arch(cfg, arch)) for arch in args.sweep]
    else:
        found = [(stem, cfg)]
    candidates = [(name, _family(c), c, None if args.sweep else
                   args.checkpoint) for name, c in found]
    for base in args.baseline:
        path = baseline_config(base)
        cfg = config_of(path)
        name = osp.splitext(osp.basename(path))[0].split('_4xb2')[0]
        if path.startswith('mmseg::'):
            name += ' (mmseg)'
        candidates.append((name, _family(cfg), cfg, None))
    return candidates


def build_segmentor(cfg, checkpoint, device, calibration_shape):
    """The segmentor on ``device`` in eval mode, BN (not SyncBN); without a
    checkpoint random, BN statistics measured (:func:`randomize_norms`)."""
    model = init_segmentor(_untrained(cfg), checkpoint)
    model = revert_sync_batchnorm(model).to(device)
    if checkpoint is None:
        randomize_norms(model, _tensor_forward,
                        calibration_images(calibration_shape).to(device))
    return model


def load_agreement_images(pattern, shape):
    """BGR uint8 images matching ``pattern`` resized to ``shape`` (H, W);
    random ones when none match."""
    import cv2
    paths = sorted(glob.glob(pattern)) if pattern else []
    if not paths:
        gen = np.random.default_rng(0)
        return [gen.integers(0, 256, (*shape, 3), dtype=np.uint8)], 'random'
    images = [cv2.resize(cv2.imread(p), shape[::-1],
                         interpolation=cv2.INTER_LINEAR) for p in paths]
    return images, f'{len(paths)} images of {pattern}'


@torch.inference_mode()
def reference_labels(model, image):
    """fp32 labels (TF32 off) through MMSeg's own data preprocessor."""
    data = model.data_preprocessor(
        dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)]), False)
    with _strict_fp32():
        return _labels_forward(model, data['inputs'])[0]


def measure_fast_paths(name, model, variants, images, inputs, gmacs, args):
    """Each fast-path variant end to end (uint8 BGR batch on the device ->
    labels): setup time (fusion, cuDNN autotuning, compiling, graph
    capture), label agreement with :func:`reference_labels` on ``images``,
    and speed, timed in turn with the training form's full inference on
    ``inputs`` (see :func:`time_ms`), whose speed-up it reports. A variant
    that fails (say, torch.compile without a compiler) is recorded with its
    error and the others go on."""
    device = inputs.device
    references = [reference_labels(model, image) for image in images]
    frames = [torch.from_numpy(image).to(device)[None] for image in images]
    batch = frames[0].expand(args.batch_size, -1, -1, -1).contiguous()
    records, calls = {}, {}
    for variant in variants:
        print(f'  fast path {variant} ...', flush=True)
        try:
            options = parse_variant(variant)
            start = time.perf_counter()
            segmenter = optimize_for_inference(model, **options)
            segmenter(batch)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            setup_s = time.perf_counter() - start
            same = sum((segmenter(f)[0] == r).sum().item()
                       for f, r in zip(frames, references))
        except Exception as exc:  # reported in the table, not hidden
            records[variant] = dict(model=name, variant=variant,
                                    error=f'{type(exc).__name__}: {exc}'[:300])
            print(f'  {variant} failed: {records[variant]["error"]}',
                  flush=True)
            continue
        calls[variant] = functools.partial(segmenter, batch)
        records[variant] = dict(
            model=name, variant=variant_name(options), setup_s=setup_s,
            gmacs=gmacs, batch_size=args.batch_size,
            labels_agree_pct=100 * same / sum(r.numel() for r in references))
    with torch.inference_mode():
        calls['training'] = functools.partial(_labels_forward, model, inputs)
        times = time_ms(calls, device, args.warmup, args.repeat)
    training = summarize(times.pop('training'), args.batch_size)
    for variant, variant_times in times.items():
        records[variant].update(summarize(variant_times, args.batch_size))
        records[variant]['speedup_vs_training'] = (
            training['median_ms'] / records[variant]['median_ms'])
    return list(records.values())


def kernel_profile(model, variant, frame, calls=3):
    """Where a frame's time goes, for a fast-path variant run eagerly
    (torch.profiler): device time per kernel, and per conv input shape."""
    from torch.autograd.profiler_util import EventList
    from torch.profiler import ProfilerActivity, profile
    options = dict(parse_variant(variant), cuda_graph=False)
    segmenter = optimize_for_inference(model, **options)
    segmenter(frame)
    cuda = frame.device.type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(calls):
            segmenter(frame)
        if cuda:
            torch.cuda.synchronize(frame.device)
    time_key = 'cuda' if cuda else 'cpu'
    kernels = prof.key_averages().table(
        sort_by=f'self_{time_key}_time_total', row_limit=20,
        max_name_column_width=100)
    convs = EventList([
        e for e in prof.key_averages(group_by_input_shape=True)
        if e.key == 'aten::convolution'
    ]).table(sort_by=f'{time_key}_time_total', row_limit=30,
             max_name_column_width=30, max_shapes_column_width=120)
    return f'{variant}, {calls} calls\n{kernels}\n{convs}'


def run_segmentation(args, on_progress=None):
    """Measure every candidate of ``args``; the result as a JSON-able dict,
    also handed to ``on_progress`` after each model (partial results of a
    long run survive an interruption)."""
    device = torch.device(args.device)
    height, width = args.shape
    inputs = torch.randn(args.batch_size, 3, height, width,
                         generator=torch.Generator().manual_seed(0)).to(
                             device)
    calibration = (8, 3, max(height // 4, 32), max(width // 4, 32))
    images, images_note = load_agreement_images(args.agreement_images,
                                                (height, width))
    result = _segmentation_result(args, device, images_note)
    for name, family, cfg, checkpoint in segmentor_candidates(args):
        print(f'measuring {name} ...', flush=True)
        model = build_segmentor(cfg, checkpoint, device, calibration)
        new, fused = measure_forms(
            name, family, model, SEG_FORWARDS, inputs, args,
            lambda m: count_gmacs(_TensorMode(m), inputs))
        result['records'] += new
        if args.fast_path:
            result['fast_path'] += measure_fast_paths(
                name, model, args.fast_path, images, inputs, new[-1]['gmacs'],
                args)
        if args.profile:
            frame = torch.from_numpy(images[0]).to(device)[None]
            try:
                profile = kernel_profile(model, args.profile, frame)
            except Exception as exc:  # as for the fast-path variants
                profile = f'{args.profile} failed: {exc}'
            result['profiles'][name] = profile
            print(profile, flush=True)
        del model, fused
        if device.type == 'cuda':
            torch.cuda.empty_cache()
        if on_progress:
            on_progress(result)
    return result


def _segmentation_result(args, device, images_note):
    """The result of :func:`run_segmentation` before any measurement."""
    height, width = args.shape
    weights = (f'checkpoint {args.checkpoint}' if args.checkpoint
               and not args.sweep else 'random, BN statistics measured on '
               'random inputs')
    notes = [
        f'Input: {args.batch_size}x3x{height}x{width} normalised float '
        f'tensor already on the device; weights: {weights}.',
        '"raw": model forward to logits (1/8 scale); "full": logits '
        'upsampled (bilinear) to the input size + argmax, the whole '
        'inference work. FPS is of "full".',
        'Baselines "(mmseg)" are built from MMSeg\'s own configs (no '
        'pretrained weights) with every conv+BN folded, for a fair '
        'comparison with the fused RepVGG models.',
    ] + _common_notes(args, device)
    result = dict(
        mode='segmentation', title=args.title, command=args.command,
        env=environment(device, 'fp16 autocast' if args.fp16 else 'fp32'),
        notes=notes, records=[], profiles={})
    if args.fast_path:
        result.update(fast_path=[], peak_tflops=args.peak_tflops)
        result['fast_path_notes'] = [
            f'End to end: {args.batch_size}x{height}x{width}x3 uint8 BGR '
            'frame already on the device -> uint8 label map. Agreement: '
            'share of pixels whose label equals the fp32 model\'s (TF32 '
            f'off, MMSeg\'s data preprocessor) on {images_note} resized '
            f'to {height}x{width}.',
            'Variant: precision (fp32 = TF32 off; -autocast: fp32 weights '
            'under autocast, otherwise weights cast once), cl = channels_last '
            '(with SeparablePool for the PSP pooling) or nchw, graph = CUDA '
            'graph replay or eager, relu = conv+bias+ReLU in one cuDNN call, '
            'cpost = upsampling + argmax compiled into one kernel, fold = '
            'the PSP pyramid folded through the bottleneck conv '
            '(FoldedPSPHead, exact), compile = '
            'torch.compile of the whole frame (default mode), max-autotune '
            '= its max-autotune-no-cudagraphs mode, nobench = cudnn.benchmark'
            ' off (see repvgg_seg.deploy.fast_path). setup: seconds from '
            'the model to the first result (fusion, autotuning, compiling, '
            'graph capture; cuDNN\'s autotuning results are cached per '
            'process, so later variants of a dtype and layout reuse them).',
        ]
    return result


def _common_notes(args, device):
    notes = [
        f'Timing: {args.warmup} warm-up rounds, then the median and p10-p90 '
        f'of {args.repeat} calls, the forms of a model called in turn (a '
        'drifting load hits both alike), '
        + ('each between CUDA events; cudnn.benchmark on.'
           if device.type == 'cuda' else 'each timed with perf_counter.'),
        'Params: of the inference model (the auxiliary head, used only in '
        'training, left out). GMACs: multiply-adds per image (mmengine '
        'FlopAnalyzer; the '
        'paper\'s "FLOPs"); TFLOP/s = 2 x GMACs x images/s of the raw '
        'forward.',
        'Peak memory: extra memory at the peak over what was held before '
        'the timed calls (activations and workspaces, not the weights): '
        + ('torch.cuda.max_memory_allocated.' if device.type == 'cuda'
           else 'peak RSS (VmHWM, reset per measurement).'),
    ]
    if device.type == 'cuda' and not args.fp16:
        notes.append('fp32: convolutions use TF32 (PyTorch\'s default, '
                     'torch.backends.cudnn.allow_tf32).')
    return notes


# ---- ImageNet classification ----------------------------------------------
class PooledClassifier(nn.Module):
    """A backbone's last stage + global average pool + fc."""

    def __init__(self, backbone, channels, num_classes=1000):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.backbone(x)[-1].mean((2, 3)))


def has_torchvision():
    return importlib.util.find_spec('torchvision') is not None


def resnet_classifier(depth):
    """ResNet-``depth`` ImageNet classifier: torchvision's if installed,
    else MMSeg's ResNet + pool + fc (the same network)."""
    if has_torchvision():
        import torchvision
        return getattr(torchvision.models, f'resnet{depth}')()
    backbone = MODELS.build(dict(type='ResNet', depth=depth,
                                 out_indices=(3, )))
    return PooledClassifier(backbone, 512 * (1 if depth < 50 else 4))


def _classifier_forward(model, inputs):
    return model(inputs)


def run_imagenet(args, on_progress=None):
    """The classifiers of ``args.sweep`` (default: the paper's archs) in
    training and fused form and ResNet-18/50/101 (conv-BN folded); as
    :func:`run_segmentation`."""
    device = torch.device(args.device)
    height, width = args.shape
    inputs = torch.randn(args.batch_size, 3, height, width,
                         generator=torch.Generator().manual_seed(0)).to(
                             device)
    calibration = calibration_images((16, 3, height, width)).to(device)
    candidates = [(f'RepVGG-{arch}', 'repvgg',
                   lambda arch=arch: RepVGGClassifier(arch))
                  for arch in args.sweep or PAPER_NUMBERS]
    candidates += [(f'ResNet-{depth}', 'baseline',
                    lambda depth=depth: resnet_classifier(depth))
                   for depth in RESNET_DEPTHS]
    notes = [
        f'Classification form as in the paper: {args.batch_size} images of '
        f'{height}x{width}, random weights (BN statistics measured); '
        'images/s of the forward to logits. Paper speeds: GTX 1080Ti, '
        'fp32, batch 128.',
        'ResNets: ' + ('torchvision\'s' if has_torchvision() else
                       'MMSeg\'s ResNet + global pool + fc (the same '
                       'network; torchvision is not installed)')
        + ', conv+BN folded.',
    ] + _common_notes(args, device)
    result = dict(mode='imagenet', title=args.title, command=args.command,
                  env=environment(device, 'fp16 autocast' if args.fp16
                                  else 'fp32'),
                  notes=notes, records=[])
    for name, family, build in candidates:
        print(f'measuring {name} ...', flush=True)
        model = randomize_norms(build().to(device), _classifier_forward,
                                calibration)
        new, _ = measure_forms(name, family, model,
                               dict(raw=_classifier_forward), inputs, args,
                               lambda m: count_gmacs(m, inputs))
        for record in new:
            record['paper_images_per_s'] = PAPER_SPEED.get(
                name.removeprefix('RepVGG-'))
        result['records'] += new
        del model
        if on_progress:
            on_progress(result)
    return result


# ---- reporting ------------------------------------------------------------
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


def records_table(result):
    imagenet = result['mode'] == 'imagenet'
    reference = next((r for r in result['records']
                      if r['model'] in ('ResNet-50', 'pspnet_r50-d8 (mmseg)')),
                     None)
    header = ['model', 'form', 'params (M)', 'GMACs',
              'images/s' if imagenet else 'FPS',
              'latency ms [p10-p90]' if imagenet else
              'full latency ms [p10-p90]']
    if not imagenet:
        header += ['raw FPS', 'raw latency ms [p10-p90]']
    header += ['TFLOP/s', 'peak mem (MiB)', 'fused / training',
               'labels fused = training (%)']
    if reference:
        header.append(f"x {reference['model'].split(' ')[0]}")
    if imagenet:
        header.append('paper x ResNet-50')
    rows = []
    for r in result['records']:
        lat = r['latency']
        main_latency = lat.get('full', lat['raw'])
        row = [r['model'], r['form'] if r['family'] == 'repvgg' else
               'conv+BN folded', f"{r['params_m']:.2f}", f"{r['gmacs']:.1f}",
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


def fast_path_table(result, peak_tflops=None):
    header = ['model', 'variant', 'FPS', 'latency ms [p10-p90]', 'setup (s)',
              'TFLOP/s', 'labels = fp32 (%)', 'x training form']
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
               _fmt(r.get('speedup_vs_training'), '.2f')]
        if peak_tflops:
            rate = tflops(r, r)
            row.append(_fmt(rate and 100 * rate / peak_tflops, '.0f'))
        rows.append(row)
    return _table(header, rows)


def to_markdown(result, plot_path=None, md_dir=None):
    """One section of ``docs/benchmarks.md``: provenance, tables, plot."""
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
    lines += [f'- {note}' for note in result['notes']] + ['']
    if result.get('fast_path'):
        lines += ['### Fast inference path (`repvgg_seg.deploy.fast_path`)',
                  '',
                  fast_path_table(result, result.get('peak_tflops')), '']
        lines += [f'- {n}' for n in result['fast_path_notes']
                  + FAST_PATH_READING] + ['']
    for name, profile in result.get('profiles', {}).items():
        lines += [f'<details><summary>Kernel profile of {name}</summary>', '',
                  '```', profile, '```', '</details>', '']
    if plot_path:
        rel = osp.relpath(plot_path, md_dir) if md_dir else plot_path
        lines += [f'![{result["title"]}]({rel})', '']
    return '\n'.join(lines)


def _section_markers(title):
    slug = re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')
    return (f'<!-- benchmark:{slug}:start -->',
            f'<!-- benchmark:{slug}:end -->')


def update_markdown(path, title, section):
    """Write ``section`` into ``path`` between markers derived from
    ``title``: replaced if there, else appended (the file is created)."""
    start, end = _section_markers(title)
    block = f'{start}\n{section}\n{end}\n'
    text = MD_HEADER
    if osp.exists(path):
        with open(path, encoding='utf-8') as f:
            text = f.read()
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1].lstrip('\n')
    else:
        text = text.rstrip('\n') + '\n\n' + block
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


#: Fast-path variants whose labels agree less with fp32 are not plotted.
PLOT_MIN_AGREEMENT = 99


def plot(result, path):
    """Speed against parameters (the RepVGG paper's picture): training and
    fused form of each RepVGG model joined by an arrow, the fastest
    fast-path variant of each as a star, baselines as squares."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5.5))
    by_model = {}
    for r in result['records']:
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
        ax.annotate(name.replace(' (mmseg)', ''),
                    (fused['params_m'], fused['fps']), fontsize=7,
                    xytext=(4, 3), textcoords='offset points')
    fastest = {}
    for r in result.get('fast_path', []):
        if (r.get('labels_agree_pct', 0) >= PLOT_MIN_AGREEMENT and
                r['fps'] > fastest.get(r['model'], {}).get('fps', 0)):
            fastest[r['model']] = r
    for name, r in fastest.items():
        params = by_model[name]['fused']['params_m']
        ax.scatter(params, r['fps'], marker='*', s=120, color='tab:red',
                   zorder=3)
        ax.annotate(f"{name.replace(' (mmseg)', '')}\n{r['variant']}",
                    (params, r['fps']), fontsize=6, color='tab:red',
                    xytext=(6, -4), textcoords='offset points')
    handles = [
        plt.Line2D([], [], marker='o', ls='', mfc='none', mec='tab:blue',
                   label='RepVGG, training form'),
        plt.Line2D([], [], marker='o', ls='', color='tab:blue',
                   label='RepVGG, fused'),
        plt.Line2D([], [], marker='s', ls='', color='tab:gray',
                   label='baseline, conv+BN folded')]
    if fastest:
        handles.append(plt.Line2D([], [], marker='*', ls='', ms=11,
                                  color='tab:red',
                                  label='fastest fast-path variant with '
                                  f'labels >= {PLOT_MIN_AGREEMENT} % = fp32'))
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
