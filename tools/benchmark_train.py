"""Benchmark training speed (ms/iter, images/s, data_time share, peak
memory) of segmentor configs and MMSeg baselines, NCHW vs channels_last,
fp32 / fp16 / bf16, in one run on one device.

    python tools/benchmark_train.py configs/pspnet_repvgg_b2-fast.py
        [--baseline pspnet_r50-d8] [--variants nchw-fp16 cl-fp16 cl-bf16]
        [--data-root data/cityscapes] [--batch-size 2]
        [--out r.json] [--out-md docs/benchmarks.md]
    python tools/benchmark_train.py --from-json r.json --out-md docs/benchmarks.md
        [--train-log NAME=work_dirs/x/<time>/vis_data/scalars.json]

Without --data-root the batches are random crops (the GPU step alone);
with it they come through the config's own train pipeline and workers.
"""
import argparse
import shlex
import sys

from repvgg_seg_cli import (bounded, input_file, output_file, package_choice,
                            positive, run_cli)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=' '.join(__doc__.split('\n\n')[0].split()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[3:]))
    parser.add_argument('configs', nargs='*', help='segmentor configs')
    parser.add_argument('--baseline', nargs='+', default=[], metavar='NAME',
                        help='MMSeg baselines by short name (pspnet_r50-d8, '
                        'ddrnet-23-slim, ...) or config path '
                        '(mmseg::ddrnet/....py)')
    parser.add_argument('--variants', nargs='+', metavar='VARIANT',
                        type=package_choice('repvgg_seg.apis',
                                            'TRAINING_VARIANTS'),
                        help='memory layout and precision: nchw or cl '
                        '(channels_last), fp32, fp16 or bf16 (default: '
                        'nchw-fp16 cl-fp16 cl-bf16)')
    parser.add_argument('--device', help='e.g. cuda:0 or cpu (default: '
                        'cuda if available, else cpu)')
    parser.add_argument('--batch-size', type=positive(int), default=2,
                        help='images per step on the one device, whatever '
                        "the config's per-GPU batch (e.g. 12 = 2xb6 on one "
                        'GPU; default: %(default)s)')
    parser.add_argument('--data-root', help='Cityscapes-format data for '
                        'the real train pipeline (default: random crops)')
    parser.add_argument('--num-workers', type=bounded(int, 0),
                        help='override the train dataloader workers of '
                        'every config')
    parser.add_argument('--warmup', type=bounded(int, 0), default=10,
                        help='untimed iterations first (default: '
                        '%(default)s)')
    parser.add_argument('--iters', type=positive(int), default=30,
                        help='timed iterations (default: %(default)s)')
    parser.add_argument('--title', default='Training speed')
    parser.add_argument('--from-json',
                        type=input_file('benchmark JSON', ('.json', )),
                        help='re-render a saved result')
    parser.add_argument('--train-log', nargs='+', default=[],
                        metavar='NAME=PATH[=COMMAND]',
                        help='also summarise real tools/train.py runs')
    parser.add_argument('--skip', type=bounded(int, 0), default=50,
                        help='leave out the first iterations of each '
                        '--train-log')
    parser.add_argument('--out', type=output_file('JSON', 'result.json'),
                        help='write the JSON result here')
    parser.add_argument('--out-md',
                        type=output_file('Markdown file', 'benchmarks.md'),
                        help='write the section into this '
                        'Markdown file (e.g. docs/benchmarks.md)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from repvgg_seg import apis
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    apis.check_device(device)
    if args.from_json:
        result = apis.load_training_result(args.from_json)
        command = result['command']
    else:
        result = apis.run_training_benchmark(
            args.configs + args.baseline,
            args.variants or list(apis.DEFAULT_TRAINING_VARIANTS), device,
            args.batch_size, args.data_root, args.warmup, args.iters,
            args.num_workers)
        command = shlex.join(['python', 'tools/benchmark_train.py',
                              *(sys.argv[1:] if argv is None else argv)])
    print(apis.report_training_benchmark(result, args.title, command,
                                         args.out, args.out_md,
                                         args.train_log, args.skip))


if __name__ == '__main__':
    run_cli(main)
