"""Fuse a trained segmentor or classifier for deployment.

python tools/fuse.py CONFIG CHECKPOINT OUT.pth [--out-config OUT.py]

Writes the fused checkpoint and its deploy config (default: OUT.pth with
.py), which load in tools/test.py and mmseg.apis.init_model as they are.
"""
import argparse

from repvgg_seg_cli import checkpoint_file, config_file, output_file, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', type=config_file,
                        help='training config of the checkpoint')
    parser.add_argument('checkpoint', type=checkpoint_file,
                        help='trained checkpoint')
    parser.add_argument('out_checkpoint',
                        type=output_file('fused checkpoint', 'fused.pth'),
                        help='fused checkpoint to write')
    parser.add_argument('--out-config',
                        type=output_file('deploy config', 'fused.py'),
                        help='deploy config to write (default: '
                        'OUT_CHECKPOINT with .py)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import fuse_checkpoint
    report = fuse_checkpoint(args.config, args.checkpoint,
                             args.out_checkpoint, args.out_config)
    print(f'Fused {report["network"]}: fused vs original on a random '
          f'input, max abs diff {report["max_abs_diff"]:.2e}, relative '
          f'{report["relative_diff"]:.2e}')
    print(f'Parameters: {report["params"] / 1e6:.2f} M -> '
          f'{report["fused_params"] / 1e6:.2f} M')
    print(f'wrote fused checkpoint {report["out_checkpoint"]} and deploy '
          f'config {report["out_config"]}')


if __name__ == '__main__':
    run_cli(main)
