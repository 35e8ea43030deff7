"""Segment a driving video in real time with a fused RepVGG segmentor.

python tools/video_demo.py VIDEO CONFIG CHECKPOINT --out overlay.mp4

VIDEO is a video file (mp4/avi/mkv), a folder of frames or a camera index
(or a stream URL OpenCV opens). A training checkpoint is fused on load; a
fused one (tools/fuse.py) is used as it is, with its deploy or its training
config. The overlay is H.264 (browsers play it) when PyAV is installed.
"""
import argparse
import os

from repvgg_seg_cli import (VIDEO_FPS_RANGE, bounded, checkpoint_file,
                            config_file, positive, run_cli)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('video', help='video file, folder of frames or '
                        'camera index')
    parser.add_argument('config', type=config_file,
                        help='training or deploy config')
    parser.add_argument('checkpoint', type=checkpoint_file,
                        help='training or fused checkpoint')
    parser.add_argument('--out', help='overlay video to write (.mp4, .mkv: '
                        'H.264, 4:4:4 for odd sides; .avi: MJPG); same '
                        'size, fps and frame count as the input')
    parser.add_argument('--out-labels', help='new folder for per-frame '
                        'label PNGs (Cityscapes train ids)')
    parser.add_argument('--device', default='cpu',
                        help='e.g. cuda:0 (default: %(default)s)')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 autocast on the MMSeg path (CUDA only)')
    parser.add_argument('--fp32', action='store_true',
                        help='on a GPU, use the MMSeg fp32 path instead of '
                        'the default fast path (fp16, CUDA graphs)')
    parser.add_argument('--batch-size', type=positive(int), default=1,
                        help='frames per forward pass (default: '
                        '%(default)s)')
    parser.add_argument('--opacity', type=bounded(float, 0, 1), default=0.5,
                        help='opacity of the label colours, in [0, 1] '
                        '(default: %(default)s)')
    parser.add_argument('--show-fps', action='store_true',
                        help='draw the live FPS and latency on the overlay')
    parser.add_argument('--max-frames', type=bounded(int, 0),
                        help='stop after this many frames')
    parser.add_argument('--fps', type=bounded(float, *VIDEO_FPS_RANGE),
                        help='frame rate of a folder of frames (default 30), '
                        'or to override the input\'s (%g..%g)'
                        % VIDEO_FPS_RANGE)
    parser.add_argument('--show', action='store_true',
                        help='show the overlay in a window (q quits)')
    parser.add_argument('--realtime', action='store_true',
                        help='stream mode (cameras, network streams; files '
                        'play at their fps): drop frames when the model '
                        'falls behind, so the latency stays bounded')
    parser.add_argument('--codec', default='auto',
                        help='encoder: auto (h264_nvenc where the GPU has '
                        'it, else libx264; OpenCV without PyAV), libx264, '
                        'libx265, h264_nvenc, hevc_nvenc, ..., or opencv '
                        '(default: %(default)s)')
    parser.add_argument('--crf', type=bounded(int, 0, 51), default=23,
                        help='quality (x264 CRF, NVENC CQ): lower is better '
                        '(default: %(default)s)')
    parser.add_argument('--preset', default='ultrafast',
                        help='x264 preset, ultrafast ... veryslow (default: '
                        '%(default)s)')
    parser.add_argument('--encoder-threads', type=bounded(int, 0, 1024),
                        default=0, help='frames the encoder works on at '
                        'once (PyAV\'s encoders); 0 = auto: every core '
                        '(default: %(default)s)')
    parser.add_argument('--decoder', default='opencv',
                        choices=['opencv', 'pyav'],
                        help='video decoder (default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import format_report, run_video_demo
    # FFmpeg would print its own lines about a bad file; ours says it all.
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')
    report = run_video_demo(
        args.video, args.config, args.checkpoint, args.out, args.out_labels,
        args.device, args.fp16, args.fp32, args.batch_size, args.opacity,
        args.show_fps, args.max_frames, args.fps, args.show, args.realtime,
        args.codec, args.crf, args.preset, args.decoder,
        not args.no_progress, args.encoder_threads)
    print()
    for line in format_report(report, args.batch_size, args.device):
        print(line)
    for name, path in (('overlay video', args.out),
                       ('label PNGs', args.out_labels)):
        if path:
            print(f'Saved {name}: {path}')


if __name__ == '__main__':
    run_cli(main)
