"""A benchmark run (``tools/benchmark.py``): segmentors, or ImageNet
classifiers, measured one after the other in one process on one device, so
the ratios are comparable; the JSON is written after each model (an
interrupted run keeps what it measured), then rendered."""
import json
import os
import os.path as osp
import time
import traceback

import torch

from ..utils.cli import is_user_error
from ..utils.errors import InvalidArgument, UserError
from ..utils.files import atomic_write
from .arch_table import PAPER_NUMBERS
from .candidates import (RESNET_DEPTHS, build_segmentor, calibration_images,
                         has_torchvision, randomize_norms, repvgg_classifier,
                         resnet_classifier, segmentor_candidates)
from .measure import (SEG_FORWARDS, classifier_forward, error_text,
                      kernel_profile, load_agreement_images,
                      measure_fast_paths, measure_forms)
from .notes import common_notes, fast_path_notes, segmentation_notes
from .plots import plot, plot_accuracy
from .published import published_miou
from .report import (PAPER_SPEED, to_markdown, update_markdown,
                     wrong_variants)
from .timing import environment
from .variants import parse_variant


def _inputs(args, device):
    height, width = args.shape
    return torch.randn(args.batch_size, 3, height, width,
                       generator=torch.Generator().manual_seed(0)).to(device)


def _result(mode, args, device, notes):
    return dict(mode=mode, title=args.title, command=args.command,
                env=environment(device, 'fp16 autocast' if args.fp16
                                else 'fp32'),
                notes=notes, records=[])


def _failed(candidate, exc):
    """The record of a model that could not be measured; the traceback goes
    to stderr (a bug must stay visible), the run goes on."""
    traceback.print_exc()
    return dict(model=candidate['name'], family=candidate['family'],
                error=error_text(exc))


def _measure_segmentor(candidate, inputs, images, args, result):
    device = inputs.device
    height, width = args.shape
    # a quarter of the input, but large enough for every pyramid pooling
    calibration = (8, 3, max(height // 4, 64), max(width // 4, 64))
    model = build_segmentor(candidate['cfg'], candidate['checkpoint'],
                            device, calibration)
    new, _ = measure_forms(candidate['name'], candidate['family'], model,
                           SEG_FORWARDS, inputs, args)
    miou, source = published_miou(candidate['config_name'])
    for record in new:
        record.update(config=candidate['config_name'], miou=miou,
                      miou_source=source)
    result['records'] += new
    if args.fast_path:
        result['fast_path'] += measure_fast_paths(
            candidate['name'], model, args.fast_path, images, inputs,
            new[-1]['gmacs'], args)
    if args.profile:
        frame = torch.from_numpy(images[0]).to(device)[None]
        try:
            profile = kernel_profile(model, args.profile, frame)
        except Exception as exc:  # as for the fast-path variants
            profile = f'{args.profile} failed: {error_text(exc)}'
        result['profiles'][candidate['name']] = profile
        print(profile, flush=True)


def run_segmentation(args, on_progress=None):
    """Measure every candidate of ``args``; the result as a JSON-able dict,
    also handed to ``on_progress`` after each model. A model that fails is
    recorded with its error and the others go on."""
    for variant in args.fast_path + ([args.profile] if args.profile else []):
        parse_variant(variant)  # refuse a typo before measuring anything
    candidates = segmentor_candidates(args)
    device = torch.device(args.device)
    inputs = _inputs(args, device)
    images, images_note = load_agreement_images(args.agreement_images,
                                                tuple(args.shape))
    result = _result('segmentation', args, device,
                     segmentation_notes(args) + common_notes(args, device))
    result['profiles'] = {}
    if args.fast_path:
        result.update(fast_path=[], peak_tflops=args.peak_tflops,
                      fast_path_notes=fast_path_notes(args, images_note))
    start = time.perf_counter()
    for candidate in candidates:
        print(f"measuring {candidate['name']} ... "
              f'({time.perf_counter() - start:.0f} s into the run)',
              flush=True)
        try:
            _measure_segmentor(candidate, inputs, images, args, result)
        except Exception as exc:  # noqa: B902 (recorded, see _failed)
            if candidate['checkpoint'] and is_user_error(exc):
                raise  # the user's checkpoint: nothing to measure it with
            result['records'].append(_failed(candidate, exc))
        if device.type == 'cuda':
            torch.cuda.empty_cache()
        if on_progress:
            on_progress(result)
    return result


def run_imagenet(args, on_progress=None):
    """The classifiers of ``args.sweep`` (default: the paper's archs) in
    training and fused form and ResNet-18/50/101 (conv-BN folded); as
    :func:`run_segmentation`."""
    device = torch.device(args.device)
    height, width = args.shape
    inputs = _inputs(args, device)
    calibration = calibration_images((16, 3, height, width)).to(device)
    candidates = [dict(name=f'RepVGG-{arch}', family='repvgg',
                       build=lambda arch=arch: repvgg_classifier(arch))
                  for arch in args.sweep or PAPER_NUMBERS]
    candidates += [dict(name=f'ResNet-{depth}', family='baseline',
                        build=lambda depth=depth: resnet_classifier(depth))
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
    ] + common_notes(args, device)
    result = _result('imagenet', args, device, notes)
    for candidate in candidates:
        name = candidate['name']
        print(f'measuring {name} ...', flush=True)
        try:
            model = randomize_norms(candidate['build']().to(device),
                                    classifier_forward, calibration)
            new, _ = measure_forms(name, candidate['family'], model,
                                   dict(raw=classifier_forward), inputs, args)
        except Exception as exc:  # noqa: B902 (recorded, see _failed)
            result['records'].append(_failed(candidate, exc))
            continue
        for record in new:
            record['paper_images_per_s'] = PAPER_SPEED.get(
                name.removeprefix('RepVGG-'))
        result['records'] += new
        if on_progress:
            on_progress(result)
    return result


def write_json(result, path):
    atomic_write(json.dumps(result, indent=1), path, mode='w',
                 encoding='utf-8')


def read_json(path):
    with open(path, encoding='utf-8') as f:
        try:
            result = json.load(f)
        except ValueError as exc:
            raise InvalidArgument(f'{path} is not a benchmark JSON: '
                                  f'{exc}') from None
    if not isinstance(result, dict) or 'records' not in result:
        raise InvalidArgument(f'{path} is not a benchmark JSON (no records): '
                              'give the --out file of a run')
    return result


def _accuracy_plot_path(path):
    stem, ext = osp.splitext(path)
    return f'{stem}_miou{ext or ".png"}'


class InexactVariant(UserError):
    """A fast-path variant changed the labels: its speed is no result."""


def run_benchmark(args):
    """Measure (or, ``args.from_json``, read) and write what ``args`` asks
    for: the JSON (``--out``, after every model), the plots (``--plot``,
    and beside it ``*_miou`` against published mIoU for segmentors) and
    the Markdown section (``--out-md``); print the section, return the
    result. A measured variant marked wrong (see
    ``measure.judge_against_plain``) then fails the run, unless
    ``args.allow_inexact``."""
    for path in (args.out, args.plot, args.out_md):
        if path and osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
    if args.from_json:
        result = read_json(args.from_json)
        result['title'] = args.title or result['title']
    else:
        if args.device.startswith('cuda'):
            if not torch.cuda.is_available():
                raise InvalidArgument(f'--device {args.device}: no CUDA '
                                      'device here; use --device cpu')
            torch.backends.cudnn.benchmark = True
        save = args.out and (lambda partial: write_json(partial, args.out))
        run = run_imagenet if args.imagenet else run_segmentation
        result = run(args, save)
    if args.out:
        write_json(result, args.out)
    plots = []
    if args.plot:
        plot(result, args.plot)
        plots.append(args.plot)
        if result['mode'] == 'segmentation':
            plots.append(_accuracy_plot_path(args.plot))
            plot_accuracy(result, plots[-1])
    md_dir = osp.dirname(args.out_md) if args.out_md else None
    section = to_markdown(result, plots, md_dir)
    if args.out_md:
        update_markdown(args.out_md, result['title'], section)
    print(section)
    wrong = wrong_variants(result)
    if wrong and not args.from_json and not args.allow_inexact:
        raise InexactVariant(
            'fast-path variants change the labels (marked WRONG above, left '
            'out of the best and the plots): ' + '; '.join(
                f"{r['model']} {r['variant']} {r['labels_agree_pct']:.2f} % "
                f"vs {r['plain_agree_pct']:.2f} % plain" for r in wrong)
            + '; fix the variant, or pass --allow-inexact to accept')
    return result
