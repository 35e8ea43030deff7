"""Test a segmentor or classifier: per-class IoU and mIoU, or top-1/top-5.

As MMSegmentation's ``tools/test.py``. Without --work-dir the logs and
metrics go to ``work_dirs/<config name>/``, or for a fused model (the
deploy config written by tools/fuse.py) next to its checkpoint.
"""
import argparse

from repvgg_seg_cli import (add_runner_arguments, bounded, checkpoint_file,
                            config_file, output_folder, parse_runner_args,
                            positive, run_cli)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', type=config_file,
                        help='test config file path')
    parser.add_argument('checkpoint', type=checkpoint_file,
                        help='checkpoint file')
    parser.add_argument('--work-dir', type=output_folder('logs and metrics'),
                        help='where to dump the metrics as json')
    parser.add_argument(
        '--out', type=output_folder('predicted label maps'),
        help='directory to save the predicted label maps (PNG) '
        'for offline evaluation')
    parser.add_argument('--show', action='store_true',
                        help='show prediction results in a window')
    parser.add_argument(
        '--show-dir', help='save painted predictions as SHOW_DIR/vis_data/'
        'vis_image/*.png (a relative SHOW_DIR is taken under the work dir)')
    parser.add_argument(
        '--show-interval', type=positive(int), default=1,
        help='with --show/--show-dir, paint every N-th image (default: all)')
    parser.add_argument('--wait-time', default=2,
                        type=bounded(float, 0, what='a number of seconds'),
                        help='seconds each shown image stays')
    add_runner_arguments(parser, 'test_dataloader.dataset.data_root=DIR')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (multi-scale + flip)')
    return parse_runner_args(parser)


def main():
    args = parse_args()
    from repvgg_seg.apis import test
    test(args.config, args.checkpoint, args.work_dir, args.out, args.show,
         args.show_dir, args.wait_time, args.tta, args.cfg_options,
         args.launcher, args.show_interval)


if __name__ == '__main__':
    run_cli(main)
