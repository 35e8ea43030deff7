"""Train a segmentor or classifier (MMSegmentation's ``tools/train.py``).

Single process:  python tools/train.py CONFIG
Multi-GPU/node:  torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch
"""
import argparse

from repvgg_seg_cli import (add_runner_arguments, config_file,
                            output_folder, package_choice, parse_runner_args,
                            run_cli)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', type=config_file,
                        help='train config file path')
    parser.add_argument('--work-dir', type=output_folder('logs and models'),
                        help='where to save logs and models')
    parser.add_argument(
        '--resume', action='store_true',
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp', nargs='?', const='fp16', metavar='DTYPE',
        type=package_choice('repvgg_seg.apis', 'AMP_DTYPES'),
        help='mixed-precision training in channels_last on the GPU: fp16 '
        '(plain --amp) or bf16')
    add_runner_arguments(parser, 'train_dataloader.dataset.data_root=DIR')
    return parse_runner_args(parser)


def main():
    args = parse_args()
    from repvgg_seg.apis import train
    train(args.config, args.work_dir, args.resume, args.amp,
          args.cfg_options, args.launcher)


if __name__ == '__main__':
    run_cli(main)
