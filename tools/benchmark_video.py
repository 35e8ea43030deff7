"""Benchmark the video pipeline end to end (overlay mp4, label PNGs only,
nothing written, model only, real-time stream), print a line of the
targets per model and record it in docs/benchmarks.md.

python tools/benchmark_video.py configs/pspnet_repvgg_b2-fast.py \
    configs/pspnet_repvgg_b1g2-fast.py configs/pspnet_repvgg_a0-fast.py \
    --device cuda:0
"""
import argparse

from repvgg_seg_cli import (bounded, config_file, output_file, output_folder,
                            positive, run_cli)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', type=config_file,
                        help='segmentation configs')
    parser.add_argument('--device', default='cuda:0')
    parser.add_argument('--size', type=int, nargs=2, default=[2048, 1024],
                        metavar=('WIDTH', 'HEIGHT'), help='video size')
    parser.add_argument('--frames', type=positive(int), default=240,
                        help='frames of the synthetic video (default: '
                        '%(default)s)')
    parser.add_argument('--batch-size', type=positive(int), default=1,
                        help='frames per forward pass (default: %(default)s)')
    parser.add_argument('--iterations', type=positive(int), default=50,
                        help='calls of the model alone')
    parser.add_argument('--realtime-frames', type=positive(int), default=120,
                        help='frames of the real-time stream run')
    parser.add_argument('--codec', default='auto')
    parser.add_argument('--preset', default='ultrafast')
    parser.add_argument('--encoder-threads', type=bounded(int, 0, 1024),
                        default=0, help='frames encoded at once; 0 = auto: '
                        'every core (default: %(default)s)')
    parser.add_argument('--work-dir', default='work_dirs/video_bench',
                        type=output_folder('videos and results'),
                        help='where the videos and results go (default: '
                        '%(default)s)')
    parser.add_argument('--video', help='use this video instead of the '
                        'synthetic one')
    parser.add_argument('--out-json', type=output_file('JSON', 'video.json'),
                        help='default: WORK_DIR/video_'
                        '{cuda,cpu}.json')
    parser.add_argument('--markdown', default='docs/benchmarks.md',
                        help="file to update ('' for none)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import check_device, run_video_benchmark
    check_device(args.device)
    run_video_benchmark(
        args.configs, args.device, tuple(args.size), args.frames,
        batch_size=args.batch_size, iterations=args.iterations,
        realtime_frames=args.realtime_frames, codec=args.codec,
        preset=args.preset, work_dir=args.work_dir, video=args.video,
        out_json=args.out_json, markdown_file=args.markdown,
        encoder_threads=args.encoder_threads)


if __name__ == '__main__':
    run_cli(main)
