"""Segment an image or a folder of images (MMSegmentation's image demo).

python demo/image_demo.py IMAGE_OR_FOLDER CONFIG CHECKPOINT --out-dir DIR

Writes DIR/<stem>.png (DIR/<name>.png, e.g. a.jpg.png, for images that share
a stem): the image with the predicted class colours blended
in (Cityscapes palette), with --legend a panel naming the classes shown.
A training checkpoint is fused on load; a fused one works with its deploy
or its training config.
"""
import argparse

from repvgg_seg_cli import (bounded, checkpoint_file, config_file,
                            output_folder, run_cli)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('img', help='image file or folder of images')
    parser.add_argument('config', type=config_file,
                        help='training or deploy config')
    parser.add_argument('checkpoint', type=checkpoint_file,
                        help='training or fused checkpoint')
    parser.add_argument('--out-dir', default='demo_out',
                        type=output_folder('overlays'),
                        help='folder for the overlay PNGs (default: '
                        '%(default)s)')
    parser.add_argument('--device', default='cpu',
                        help='e.g. cuda:0 (default: %(default)s)')
    parser.add_argument('--opacity', type=bounded(float, 0, 1), default=0.5,
                        help='opacity of the class colours, in [0, 1] '
                        '(default: %(default)s)')
    parser.add_argument('--legend', action='store_true',
                        help='add a class-colour legend beside each image')
    return parser.parse_args()


def main():
    args = parse_args()
    from repvgg_seg.apis import segment_images
    written = segment_images(args.img, args.config, args.checkpoint,
                             args.out_dir, args.device, args.opacity,
                             args.legend)
    print(f'wrote {len(written)} overlay(s) to {args.out_dir}')


if __name__ == '__main__':
    run_cli(main)
