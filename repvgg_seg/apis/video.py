"""``run_video_demo``: a checkpoint and a video in, an overlay video, label
PNGs and the numbers a deployer needs out (what tools/video_demo.py runs)."""
from ..deploy import FrameSource, SegPredictor, segment_video
from ..deploy.video import check_outputs
from ..utils.errors import InvalidArgument
from .inference import init_segmentor


def run_video_demo(video, config, checkpoint, out=None, out_labels=None,
                   device='cpu', fp16=False, fp32=False, batch_size=1,
                   opacity=0.5, show_fps=False, max_frames=None, fps=None,
                   show=False, realtime=False, codec='auto', crf=23,
                   preset='ultrafast', decoder='opencv', progress=True,
                   encoder_threads=0):
    """Load the model (fused on load) and segment ``video``; returns the
    report of :func:`repvgg_seg.deploy.segment_video` with the input's
    ``size`` and ``fps`` added."""
    with FrameSource(video, fps, decoder) as source:
        # refuse the outputs before the slow model load
        check_outputs(out, out_labels, inputs=[source.path])
        model = init_segmentor(config, checkpoint, device, fuse=True)
        if not hasattr(model, 'decode_head'):
            raise InvalidArgument(f'{config} builds a {type(model).__name__},'
                                  ' not a segmentor: give a segmentation '
                                  'config (configs/pspnet_repvgg_*.py)')
        predictor = SegPredictor(model, batch_size, fp16,
                                 fast=False if fp32 else None)
        report = segment_video(
            source, predictor, out, out_labels, opacity, show_fps,
            max_frames, show, realtime, codec, crf, preset, progress,
            encoder_threads)
    report.update(size=source.size, input_fps=source.fps)
    return report


def format_report(report, batch_size, device):
    """The lines printed at the end of a run."""
    stages = ', '.join(f'{k} {v:.2f}' for k, v in report['stage_ms'].items())
    width, height = report['size']
    codec = f', {report["codec"]}' if report['codec'] else ''
    lines = [
        f'{report["frames"]} frames of {width}x{height} at '
        f'{report["input_fps"]:g} fps in {report["seconds"]:.1f} s: '
        f'{report["fps"]:.2f} FPS end to end, {report["model_fps"]:.2f} FPS '
        f'model only (batch {batch_size}, {device}, '
        f'{report["backend"]}{codec})',
        f'latency (decoded -> labels ready): p50 '
        f'{report["latency_ms"]["p50"]:.1f} ms, p99 '
        f'{report["latency_ms"]["p99"]:.1f} ms',
        f'time per frame (ms): {stages}',
    ]
    if report['dropped']:
        lines.append(f'dropped {report["dropped"]} frames (--realtime: the '
                     'model fell behind the stream)')
    return lines
