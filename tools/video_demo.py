"""Segment a driving video in real time with a fused RepVGG segmentor.

python tools/video_demo.py VIDEO CONFIG CHECKPOINT --out overlay.mp4

VIDEO is a video file (mp4/avi/mkv), a folder of frames or a camera index.
A training checkpoint is fused on load; a fused one (tools/fuse.py) is used
as it is, with its deploy or its training config.
"""
import argparse
import os
import sys

import repvgg_seg  # noqa: F401  (registers modules; mmcv-lite/torch compat)
from repvgg_seg.apis import init_segmentor
from repvgg_seg.deploy import (FrameSource, SegPredictor,
                               segment_video)
from repvgg_seg.deploy.video import check_outputs
from repvgg_seg.utils.errors import UserError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('video', help='video file, folder of frames or '
                        'camera index')
    parser.add_argument('config', help='training or deploy config')
    parser.add_argument('checkpoint', help='training or fused checkpoint')
    parser.add_argument('--out', help='overlay video to write (.mp4, .avi, '
                        '.mkv); same size and fps as the input')
    parser.add_argument('--out-labels', help='new folder for per-frame '
                        'label PNGs (Cityscapes train ids)')
    parser.add_argument('--device', default='cpu', help='e.g. cuda:0')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 autocast on the MMSeg path (CUDA only)')
    parser.add_argument('--fp32', action='store_true',
                        help='on a GPU, use the MMSeg fp32 path instead of '
                        'the default fast path (fp16, CUDA graphs)')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='frames per forward pass')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='opacity of the label colours, in [0, 1]')
    parser.add_argument('--show-fps', action='store_true',
                        help='draw the running FPS on the overlay')
    parser.add_argument('--max-frames', type=int,
                        help='stop after this many frames')
    parser.add_argument('--fps', type=float, help='frame rate of a folder '
                        'of frames (default 30), or to override the input\'s')
    parser.add_argument('--show', action='store_true',
                        help='show the overlay in a window (q quits)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # FFmpeg would print its own lines about a bad file; ours says it all.
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')
    try:
        with FrameSource(args.video, args.fps) as source:
            check_outputs(args.out, args.out_labels)  # before the slow load
            model = init_segmentor(args.config, args.checkpoint, args.device,
                                   fuse=True)
            predictor = SegPredictor(model, args.batch_size, args.fp16,
                                     fast=False if args.fp32 else None)
            stats = segment_video(
                source, predictor, args.out, args.out_labels, args.opacity,
                args.show_fps, args.max_frames, args.show)
    except (UserError, OSError, ValueError) as exc:
        sys.exit(f'error: {exc}')
    except KeyboardInterrupt:
        sys.exit('interrupted: no output was written')
    frames = stats['frames']
    print(f'\n{frames} frames of {source.size[0]}x{source.size[1]} at '
          f'{source.fps:g} fps in {stats["seconds"]:.1f} s: '
          f'{frames / stats["seconds"]:.2f} FPS end to end, '
          f'{frames / max(stats["model_seconds"], 1e-9):.2f} FPS model only '
          f'(batch {args.batch_size}, {args.device}'
          f'{", fp16" if args.fp16 else ""})')
    for name, path in (('overlay video', args.out),
                       ('label PNGs', args.out_labels)):
        if path:
            print(f'Saved {name}: {path}')


if __name__ == '__main__':
    main()
