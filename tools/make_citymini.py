"""Generate citymini, the synthetic Cityscapes-format data set, or a video.

The video drives through the same synthetic streets.

Example: python tools/make_citymini.py
then:    python tools/prepare_cityscapes.py data/citymini
Video:   python tools/make_citymini.py --video data/drive.mp4
Both: python tools/make_citymini.py --out data/citymini --video data/drive.mp4
"""
import argparse
import time

from repvgg_seg_cli import (bounded, output_file, output_folder, positive,
                            run_cli)

#: Scene sizes the street renderer draws sensibly.
MIN_SIDE, MAX_SIDE = 32, 8192
#: Seeds numpy takes.
MAX_SEED = 2**32 - 1
#: Where the data set goes when neither --out nor --video is given.
DEFAULT_OUT = 'data/citymini'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument(
        '--out', type=output_folder('data set'),
        help=f'output Cityscapes root (default: {DEFAULT_OUT}; with '
        '--video, the data set is written only if --out is given)')
    parser.add_argument('--num-train', type=positive(int), default=24,
                        help='training scenes (default: %(default)s)')
    parser.add_argument('--num-val', type=positive(int), default=8,
                        help='validation scenes (default: %(default)s)')
    parser.add_argument('--height', type=bounded(int, MIN_SIDE, MAX_SIDE),
                        default=256, help='scene height in pixels '
                        '(default: %(default)s)')
    parser.add_argument('--width', type=bounded(int, MIN_SIDE, MAX_SIDE),
                        default=512, help='scene width in pixels '
                        '(default: %(default)s)')
    parser.add_argument('--seed', type=bounded(int, 0, MAX_SEED), default=0,
                        help=f'random seed, 0..{MAX_SEED} (default: '
                        '%(default)s)')
    parser.add_argument(
        '--video',
        metavar='PATH', type=output_file('video', 'drive.mp4'),
        help='write a synthetic driving video here (.mp4) instead of the '
        'data set (add --out to write both)')
    parser.add_argument('--frames', type=positive(int), default=150,
                        help='video frames (default: %(default)s)')
    parser.add_argument('--fps', type=positive(float, 1000), default=15.0,
                        help='video frame rate (default: %(default)s)')
    args = parser.parse_args(argv)
    if args.out is None and not args.video:
        args.out = DEFAULT_OUT
    return args


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import generate_citymini, make_driving_video
    if args.out:
        start = time.perf_counter()
        summary = generate_citymini(args.out, args.num_train, args.num_val,
                                    args.height, args.width, args.seed)
        counts = ' + '.join(f'{len(stems)} {split}'
                            for split, stems in summary['splits'].items())
        print(f'wrote {counts} scenes ({args.height}x{args.width}, '
              f'{len(summary["labels"])} labels) to {args.out} in '
              f'{time.perf_counter() - start:.1f}s')
    if args.video:
        path = make_driving_video(args.video, args.frames, args.fps,
                                  (args.width, args.height), args.seed)
        print(f'wrote {args.frames} frames at {args.fps:g} fps to {path}')
    if args.out:
        print(f'next: python tools/prepare_cityscapes.py {args.out}')


if __name__ == '__main__':
    run_cli(main)
