"""Train a segmentor or classifier (MMSegmentation's ``tools/train.py``).

Single process:  python tools/train.py CONFIG
Multi-GPU/node:  torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch
"""
import argparse

import repvgg_seg  # noqa: F401  (registers modules; mmcv-lite/torch compat)
from repvgg_seg.apis import (AMP_DTYPES, build_runner, check_checkpoint,
                             enable_amp, load_config)
from repvgg_seg.datasets import check_data_roots
from repvgg_seg.utils import add_runner_arguments, parse_runner_args, run_cli


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument(
        '--resume', action='store_true',
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp', nargs='?', const='fp16', choices=sorted(AMP_DTYPES),
        help='mixed-precision training in channels_last on the GPU: fp16 '
        '(plain --amp) or bf16')
    add_runner_arguments(parser, 'train_dataloader.dataset.data_root=DIR')
    return parse_runner_args(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    if args.amp:
        enable_amp(cfg, args.amp)
    cfg.resume = args.resume
    # Fail in seconds, with one line, on what the Runner would otherwise
    # trip over deep inside (or, for load_from, half-load with warnings).
    check_data_roots(cfg, ('train', 'val'))
    if cfg.get('load_from') and not cfg.resume:
        check_checkpoint(cfg, cfg.load_from, whole_model=False)
    build_runner(cfg).train()


if __name__ == '__main__':
    run_cli(main)
