"""Measuring one model: its training and fused forms (speed, memory,
multiply-adds, agreement), its fast-path variants end to end, a kernel
profile. Each failure of a variant is recorded, not raised."""
import copy
import functools
import glob
import time

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..deploy.fast_path import optimize_for_inference
from ..deploy.fuse import fuse_model
from ..models.ops import logits_to_labels
from ..utils.images import check_image_file
from .candidates import has_norms, has_training_form, tensor_forward
from .complexity import count_complexity
from .timing import (cast_context, peak_memory, strict_fp32, summarize,
                     time_ms)
from .variants import parse_variant, plain_variant, variant_name

#: A fast-path variant whose labels agree with fp32 more than this many
#: points less than its plain counterpart's (:func:`plain_variant`) changes
#: the answer: it is marked wrong, never the best, never plotted.
MAX_AGREEMENT_DROP = 2.0


def labels_forward(model, inputs):
    return logits_to_labels(model(inputs, mode='tensor'), inputs.shape[2:],
                            model.decode_head.align_corners)


def classifier_forward(model, inputs):
    return model(inputs)


#: Segmentor forwards timed: to logits, and to full-size labels.
SEG_FORWARDS = dict(raw=tensor_forward, full=labels_forward)


def error_text(exc, limit=300):
    return f'{type(exc).__name__}: {exc}'[:limit]


@torch.inference_mode()
def agreement(model, fused, forward, inputs, fp16):
    """Fused vs training form on ``inputs`` (fp32 without TF32, or fp16
    autocast): largest logit difference relative to the largest logit,
    and the share of equal argmax labels (a near-tie may flip)."""
    with cast_context(inputs.device, fp16), strict_fp32():
        expected, actual = (forward(m, inputs).float() for m in (model, fused))
    rel = ((actual - expected).abs().max() / expected.abs().max()).item()
    same = (actual.argmax(1) == expected.argmax(1)).float().mean().item()
    return dict(logits_max_rel_diff=rel, labels_agree_pct=100 * same)


def measure_forms(name, family, model, forwards, inputs, args):
    """Records of ``model`` fused (every conv+BN pair folded; a BN before
    its conv kept, counted in ``norms_kept``) and, for re-parameterized
    models (RepVGG, RDRNet) not fused yet, in training form: the latency
    of each of ``forwards`` (name -> ``fn(model, inputs)``; the forms timed
    in turn, see :func:`time_ms`),
    the peak memory of a call of the last one, params and multiply-adds.
    The fused form is compared with the unfused one."""
    fused = fuse_model(copy.deepcopy(model), strict=False)
    forms = {'fused': fused}
    if has_training_form(model):
        forms = {'training': model, 'fused': fused}
    device, batch = inputs.device, inputs.shape[0]
    last = list(forwards.values())[-1]
    counts = {form: count_complexity(m, inputs) for form, m in forms.items()}
    records = []
    with torch.inference_mode(), cast_context(device, args.fp16):
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
                params_m=counts[form]['params'] / 1e6,
                gmacs=counts[form]['macs'] / 1e9,
                norms_kept=sum(isinstance(n, _BatchNorm)
                               for n in m.modules()) if m is fused else None,
                latency=latency, fps=latency[list(forwards)[-1]]['fps'],
                batch_size=batch, peak_mem_mib=memory['mib']))
    if len(records) == 2:
        records[1]['speedup_vs_training'] = (records[1]['fps'] /
                                             records[0]['fps'])
    if has_norms(model):
        records[-1]['vs_training'] = agreement(
            model, fused, next(iter(forwards.values())), inputs, args.fp16)
    return records, fused


def load_agreement_images(pattern, shape):
    """BGR uint8 images matching ``pattern`` resized to ``shape`` (H, W);
    random ones when none match."""
    import cv2
    paths = sorted(glob.glob(pattern)) if pattern else []
    if not paths:
        gen = np.random.default_rng(0)
        return [gen.integers(0, 256, (*shape, 3), dtype=np.uint8)], 'random'
    for path in paths:
        check_image_file(path)
    images = [cv2.resize(cv2.imread(p), shape[::-1],
                         interpolation=cv2.INTER_LINEAR) for p in paths]
    return images, f'{len(paths)} images of {pattern}'


@torch.inference_mode()
def reference_labels(model, image):
    """fp32 labels (TF32 off) through MMSeg's own data preprocessor."""
    data = model.data_preprocessor(
        dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)]), False)
    with strict_fp32():
        return labels_forward(model, data['inputs'])[0]


def labels_agree_pct(segmenter, frames, references):
    """Share (%) of the pixels of ``frames`` (uint8 BGR, 1 x H x W x 3 on
    the device) whose fast-path label equals ``references``'."""
    same = sum((segmenter(f)[0] == r).sum().item()
               for f, r in zip(frames, references))
    return 100 * same / sum(r.numel() for r in references)


def judge_against_plain(records, plain_agreement):
    """Mark each measured record with its plain counterpart's agreement and
    ``wrong`` when it is more than :data:`MAX_AGREEMENT_DROP` points below
    it. ``plain_agreement(name)`` gives a plain variant's agreement (None:
    unknown, the record stays unjudged)."""
    for record in records:
        if 'error' in record:
            continue
        plain = plain_variant(parse_variant(record['variant']))
        reference = plain_agreement(plain)
        record.update(plain_variant=plain, plain_agree_pct=reference,
                      wrong=reference is not None and
                      record['labels_agree_pct'] < reference
                      - MAX_AGREEMENT_DROP)


def measure_fast_paths(name, model, variants, images, inputs, gmacs, args):
    """Each fast-path variant end to end (uint8 BGR batch on the device ->
    labels): setup time (fusion, cuDNN autotuning, compiling, graph
    capture), label agreement with :func:`reference_labels` on ``images``
    (and with its plain counterpart's, measured too if not asked for: see
    :func:`judge_against_plain`), and speed, timed in turn with the
    training form's full inference on ``inputs`` (see :func:`time_ms`),
    whose speed-up it reports. A variant the model cannot take (say,
    torch.compile without a compiler) is recorded with its error and the
    others go on."""
    device = inputs.device
    references = [reference_labels(model, image) for image in images]
    frames = [torch.from_numpy(image).to(device)[None] for image in images]
    batch = frames[0].expand(args.batch_size, -1, -1, -1).contiguous()
    records, calls = {}, {}
    for variant in variants:
        print(f'  fast path {variant} ...', flush=True)
        options = parse_variant(variant)
        try:
            start = time.perf_counter()
            segmenter = optimize_for_inference(model, **options)
            segmenter(batch)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            setup_s = time.perf_counter() - start
            agree = labels_agree_pct(segmenter, frames, references)
        except Exception as exc:  # reported in the table, not hidden
            records[variant] = dict(model=name, variant=variant,
                                    error=error_text(exc))
            print(f'  {variant} failed: {records[variant]["error"]}',
                  flush=True)
            continue
        calls[variant] = functools.partial(segmenter, batch)
        records[variant] = dict(
            model=name, variant=variant_name(options), setup_s=setup_s,
            gmacs=gmacs, batch_size=args.batch_size,
            labels_agree_pct=agree)
    measured = {r['variant']: r['labels_agree_pct']
                for r in records.values() if 'error' not in r}

    def plain_agreement(plain):
        if plain not in measured:
            try:
                measured[plain] = labels_agree_pct(optimize_for_inference(
                    model, **parse_variant(plain)), frames, references)
            except Exception as exc:  # the variant stays unjudged
                print(f'  {plain} (the plain reference) failed: '
                      f'{error_text(exc)}', flush=True)
                measured[plain] = None
        return measured[plain]

    judge_against_plain(records.values(), plain_agreement)
    with torch.inference_mode():
        calls['training'] = functools.partial(labels_forward, model, inputs)
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
