"""Benchmark RepVGG segmentors in training and fused form against MMSeg's
ResNet PSPNets (or the ImageNet classifiers against ResNets), in one run on
one device, so the speed ratios are side by side.

    python tools/benchmark.py configs/pspnet_repvgg_b2-fast.py [CHECKPOINT]
        [--shape 1024 2048] [--baseline pspnet_r50-d8 pspnet_r101-d8]
        [--sweep A0 B1g2 B2] [--fast-path fp32 fp16+cl+graph]
        [--out r.json] [--plot docs/images/r.png] [--out-md docs/benchmarks.md]
    python tools/benchmark.py --imagenet [--sweep A0 B2]   # batch 128, 224^2
    python tools/benchmark.py --from-json r.json --out-md docs/benchmarks.md

Without a checkpoint the weights are random (BN statistics measured on
random inputs, so fusion has real work): speed does not depend on them.
--baseline takes MMSeg's models by short name (pidnet-s pidnet-m pidnet-l
ddrnet-23-slim ddrnet-23 bisenetv1 bisenetv2 stdc1 stdc2 pspnet_r18-d8
pspnet_r50-d8 pspnet_r101-d8), our RDRNet configs (rdrnet-s-simple rdrnet-s
rdrnet-m rdrnet-l) or any config path; the table shows each
config's published mIoU, and --plot also writes *_miou.png (FPS against
mIoU).
"""
import argparse
import os.path as osp
import shlex
import sys

from repvgg_seg_cli import (bounded, checkpoint_file, config_file, input_file,
                            output_file, positive, run_cli)

#: Larger input sides than this are no camera frame.
MAX_SIDE = 8192

#: Images the fast path's labels are compared on (random if none).
DEFAULT_AGREEMENT_IMAGES = 'data/citymini/leftImg8bit/val/*/*.png'


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=' '.join(__doc__.split('\n\n')[0].split()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[3:]))
    parser.add_argument('config', nargs='?', type=config_file,
                        help='segmentor config (the template of --sweep)')
    parser.add_argument('checkpoint', nargs='?', type=checkpoint_file,
                        help='optional weights')
    parser.add_argument('--shape', nargs=2, type=positive(int, MAX_SIDE),
                        metavar=('H', 'W'),
                        help='input size (default 1024 2048; --imagenet '
                        '224 224)')
    parser.add_argument('--batch-size', type=positive(int),
                        help='default 1; --imagenet 128 (the paper\'s)')
    parser.add_argument('--device', help='e.g. cuda:0 or cpu (default: '
                        'cuda if available, else cpu)')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 autocast (default fp32)')
    parser.add_argument('--repeat', type=positive(int), default=30,
                        help='timed calls per model (default: %(default)s)')
    parser.add_argument('--warmup', type=bounded(int, 0), default=10,
                        help='untimed calls first (default: %(default)s)')
    parser.add_argument('--baseline', nargs='+', default=[], metavar='NAME',
                        help='MMSeg models or our RDRNet configs by short '
                        'name (listed below), e.g. pidnet-s ddrnet-23-slim '
                        'rdrnet-s-simple, or config paths')
    parser.add_argument('--sweep', nargs='+', default=[], metavar='ARCH',
                        help='measure these RepVGG archs in CONFIG\'s model '
                        '(--imagenet: default the paper\'s archs)')
    parser.add_argument('--imagenet', action='store_true',
                        help='classification form like the paper, against '
                        'ResNet-18/50/101')
    parser.add_argument('--fast-path', nargs='+', default=[],
                        metavar='VARIANT', help='also measure these '
                        'variants of repvgg_seg.deploy.fast_path end to end, '
                        'e.g. fp32 tf32 fp16-autocast fp16+nchw fp16+cl+graph'
                        ' bf16 fp16+compile+graph')
    parser.add_argument('--agreement-images',
                        default=DEFAULT_AGREEMENT_IMAGES,
                        help='glob of images for the fast path\'s label '
                        'agreement with fp32 (resized to --shape)')
    parser.add_argument('--allow-inexact', action='store_true',
                        help='exit 0 even when a fast-path variant changes '
                        'the labels (more than 2 points of agreement with '
                        'fp32 below its plain variant); it is still marked '
                        'WRONG and never counted as the best')
    parser.add_argument('--profile', metavar='VARIANT', help='print the '
                        'time per GPU kernel of this fast-path variant')
    parser.add_argument('--peak-tflops', type=positive(float),
                        help='the device\'s datasheet rate, to report the '
                        'fast path against')
    parser.add_argument('--title', help='section title (and key) in --out-md'
                        '; with --from-json it replaces the saved one')
    parser.add_argument('--out', type=output_file('JSON', 'result.json'),
                        help='write the results as JSON')
    parser.add_argument('--plot', type=output_file('plot', 'speed.png'),
                        help='write the speed-vs-params plot (and for '
                        'segmentors PLOT_miou.png, speed vs mIoU)')
    parser.add_argument('--out-md',
                        type=output_file('Markdown file', 'benchmarks.md'),
                        help='write or replace this run\'s '
                        'section of a Markdown file (e.g. docs/benchmarks.md)')
    parser.add_argument('--from-json',
                        type=input_file('benchmark JSON', ('.json', )),
                        help='render --out-md/--plot from a '
                        'saved JSON instead of measuring')
    args = parser.parse_args(argv)
    if not (args.config or args.imagenet or args.from_json):
        parser.error('give a CONFIG, --imagenet or --from-json')
    args.shape = args.shape or ((224, 224) if args.imagenet else (1024, 2048))
    args.batch_size = args.batch_size or (128 if args.imagenet else 1)
    args.command = shlex.join(['python', 'tools/benchmark.py'] + argv)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import torch
    from repvgg_seg.apis import check_device, run_benchmark
    args.device = args.device or ('cuda' if torch.cuda.is_available()
                                  else 'cpu')
    check_device(args.device)
    if args.title is None and not args.from_json:
        what = ('ImageNet classifiers' if args.imagenet else
                osp.splitext(osp.basename(args.config or ''))[0])
        args.title = (f'{what}, {args.shape[0]}x{args.shape[1]}, batch '
                      f'{args.batch_size}, {"fp16" if args.fp16 else "fp32"}'
                      f', {args.device}')
    run_benchmark(args)


if __name__ == '__main__':
    run_cli(main)
