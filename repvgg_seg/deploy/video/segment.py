"""``segment_video``: checks, outputs and the choice of backend around the
pipeline."""
import os
import sys
from contextlib import ExitStack

import cv2
from mmengine.logging import print_log

from ...utils.files import atomic_output
from .host import HostBackend
from .overlay import bgr_palette
from .pipeline import VideoPipeline
from .sources import VideoError
from .writers import (DEFAULT_CRF, DEFAULT_PRESET, check_outputs,
                      open_video_writer)


def choose_backend(predictor, size, palette_bgr, opacity, video_format):
    """On a GPU the fast path fed and read on the device
    (:class:`~.gpu.CUDABackend`) where it serves this frame size; else the
    predictor on host arrays."""
    fast = predictor.fast
    if (fast is not None and fast.device.type == 'cuda'
            and predictor.fast_path_serves(size)):
        from .gpu import CUDABackend
        return CUDABackend(fast, palette_bgr, opacity, video_format)
    return HostBackend(predictor, palette_bgr, opacity, video_format)


def _open_window(name):
    if sys.platform.startswith('linux') and not (
            os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
        # Qt would abort the process (exit 134), not raise
        raise VideoError('--show needs a display, and neither DISPLAY nor '
                         'WAYLAND_DISPLAY is set: write the overlay with '
                         '--out instead')
    try:
        cv2.namedWindow(name, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise VideoError('--show needs OpenCV with GUI support '
                         '(opencv-python, not -headless)') from None
    return name


def segment_video(source, predictor, out=None, out_labels=None, opacity=0.5,
                  show_fps=False, max_frames=None, show=False,
                  realtime=False, codec='auto', crf=DEFAULT_CRF,
                  preset=DEFAULT_PRESET, progress=True, encoder_threads=0):
    """Segment every frame of ``source`` (a :class:`FrameSource`) with
    ``predictor`` (a :class:`SegPredictor`).

    Writes an overlay video (same size, fps and frame count as the input;
    H.264 through PyAV when installed) to ``out`` and train-id label PNGs
    ``000000.png``... to the folder ``out_labels``; ``encoder_threads``
    frames are encoded at once (0: every core). ``realtime`` drops
    frames when the model falls behind instead of queueing them. Returns
    the report of :meth:`VideoPipeline.report`. With a camera, Ctrl-C (or
    ``q`` in the window) ends the stream and keeps the outputs; with files
    it aborts, and a failed or interrupted run leaves no output.
    """
    max_frames = max_frames or None
    if not 0 <= opacity <= 1:
        raise VideoError(f'opacity must lie in [0, 1], got {opacity}')
    if max_frames is not None and max_frames < 0:
        raise VideoError(f'--max-frames must be >= 0, got {max_frames}')
    if encoder_threads < 0:
        raise VideoError(f'--encoder-threads must be >= 0 (0: every core), '
                         f'got {encoder_threads}')
    check_outputs(out, out_labels, inputs=[source.path])
    window = _open_window(source.name) if show else None
    palette = bgr_palette(predictor.model.dataset_meta['palette'])
    with ExitStack() as outputs:
        writer = labels_dir = None
        if out:
            writer = open_video_writer(out, source.fps, source.size, codec,
                                       crf, preset, encoder_threads)
            outputs.callback(writer.abort)
        if out_labels:
            labels_dir = outputs.enter_context(atomic_output(out_labels))
            os.makedirs(labels_dir)
        video_format = None
        if writer is not None or window is not None:
            video_format = 'bgr24' if window else writer.pixel_format
        backend = choose_backend(predictor, source.size, palette, opacity,
                                 video_format)
        backend.warm_up(predictor.batch_size, source.size)
        report = VideoPipeline(
            source, backend, predictor.batch_size, writer, labels_dir,
            show_fps, window, max_frames, realtime, progress).run()
        if writer is not None:
            writer.commit()
    report.update(codec=writer.codec if writer else None,
                  backend=type(backend).__name__)
    if source.num_frames and not max_frames and not realtime and \
            report['frames'] < source.num_frames:
        print_log(f'{source.name}: decoded {report["frames"]} of the '
                  f'{source.num_frames} frames it announces',
                  logger='current')
    return report
