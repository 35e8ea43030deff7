"""Real-time segmentation of a video file, a folder of frames or a camera.

Decoding and encoding run in background threads joined by bounded queues,
so the model always has the next batch ready and memory stays flat. Outputs
are written under temporary names and renamed at the end: a failed or
interrupted run leaves nothing under the requested names.
"""
import os
import os.path as osp
import queue
import threading
import time
from contextlib import ExitStack

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar, scandir

from ..utils.files import atomic_output
from .fuse import DeployError

#: Writers by output extension (all available in OpenCV's FFmpeg backend).
FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG', '.mkv': 'mp4v'}
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
#: For a folder of frames, and a video or camera that reports no rate.
DEFAULT_FPS = 30.0
#: Batches waiting between the threads; more only costs memory.
QUEUE_BATCHES = 4
_END = object()


class VideoError(DeployError):
    """An input or output the demo cannot use."""


class FrameSource:
    """BGR frames of a video file, a folder of images or a camera (an int
    or a string of digits). The first frame is read on opening, so a bad
    input fails here, before a model is loaded or an output created.

    Attributes: ``fps``, ``size`` (width, height), ``num_frames`` (0 when
    unknown) and ``is_camera``.
    """

    def __init__(self, source, fps=None):
        self.name = str(source)
        self.is_camera = isinstance(source, int) or self.name.isdigit()
        self._capture, self._files = None, None
        if self.is_camera:
            self._capture = cv2.VideoCapture(int(source))
            if not self._capture.isOpened():
                raise VideoError(f'cannot open camera {source}')
        elif osp.isdir(source):
            self._files = sorted(
                osp.join(source, name)
                for name in scandir(source, IMAGE_EXTENSIONS,
                                    case_sensitive=False))
            if not self._files:
                raise VideoError(f'folder {source} holds no images '
                                 f'({", ".join(IMAGE_EXTENSIONS)})')
        elif not osp.isfile(source):
            raise VideoError(f'video {source} does not exist')
        elif osp.getsize(source) == 0:
            raise VideoError(f'video {source} is empty (0 bytes)')
        else:
            self._capture = cv2.VideoCapture(source)
            if not self._capture.isOpened():
                raise VideoError(f'cannot open video {source}: not a video '
                                 'file, or an unsupported container')
        self._next_index = 0
        self._first = self._read()
        if self._first is None:
            raise VideoError(f'cannot decode any frame of {source}: corrupt '
                             'file or unsupported codec')
        height, width = self._first.shape[:2]
        self.size = (width, height)
        self.num_frames = len(self._files) if self._files else 0
        if self._capture is not None and not self.is_camera:
            self.num_frames = max(
                int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self.fps = fps or self._reported_fps() or DEFAULT_FPS

    def _reported_fps(self):
        if self._capture is None:
            return None
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return fps if 0 < fps < 1000 else None  # some report 0 or junk

    def _read(self):
        if self._capture is not None:
            ok, frame = self._capture.read()
            return frame if ok else None
        if self._next_index == len(self._files):
            return None
        path = self._files[self._next_index]
        self._next_index += 1
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        if frame is None:
            raise VideoError(f'cannot decode frame {path}')
        if self._next_index > 1 and frame.shape[:2] != self.size[::-1]:
            raise VideoError(
                f'frame {path} is {frame.shape[1]}x{frame.shape[0]}, the '
                f'first frame is {self.size[0]}x{self.size[1]}: a video '
                'needs frames of one size')
        return frame

    def read(self):
        """The next frame, or None at the end."""
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        return self._read()

    def close(self):
        if self._capture is not None:
            self._capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def check_outputs(out=None, out_labels=None):
    """Refuse unusable outputs before any work; create their folders."""
    if out is not None and osp.splitext(out)[1].lower() not in FOURCC:
        raise VideoError(f'cannot write {out}: use a {", ".join(FOURCC)} '
                         'file name')
    if out_labels is not None and osp.exists(out_labels) and (
            not osp.isdir(out_labels) or os.listdir(out_labels)):
        raise VideoError(f'--out-labels {out_labels} exists and is not an '
                         'empty folder: choose a new one')
    for path in (out, out_labels):
        folder = osp.dirname(osp.abspath(path)) if path else None
        if folder:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise VideoError(f'cannot create output folder {folder}: '
                                 f'{exc.strerror}') from None
            if not os.access(folder, os.W_OK):
                raise VideoError(f'output folder {folder} is not writable')


def bgr_palette(palette):
    """A 256-entry BGR lookup table of an RGB palette; 255 (ignore) black."""
    table = np.zeros((max(256, len(palette)), 3), np.uint8)
    table[:len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]
    return table


def overlay(frame, labels, palette, opacity):
    """Blend the label colours into the frame, as MMSeg's visualizer."""
    return cv2.addWeighted(frame, 1 - opacity, palette[labels], opacity, 0)


def _put(q, item, stop):
    """Put unless ``stop`` is set first; a bounded queue must never block
    a thread whose consumer has died."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            pass


def _get(q, stop):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    return _END


class _Worker(threading.Thread):
    """A daemon thread that records its error and stops the others."""

    def __init__(self, target, stop, errors):
        super().__init__(daemon=True)
        self._target_fn, self._stop_all, self._errors = target, stop, errors

    def run(self):
        try:
            self._target_fn()
        except BaseException as exc:  # handed to the main thread
            self._errors.append(exc)
            self._stop_all.set()


class _FrameWriter:
    """Paints each frame's labels and writes the outputs that were asked
    for: overlay video, label PNG, window."""

    def __init__(self, video, labels_dir, palette, opacity, show_fps,
                 window):
        self.video, self.labels_dir, self.palette = video, labels_dir, palette
        self.opacity, self.show_fps, self.window = opacity, show_fps, window

    def write(self, index, frame, labels, fps):
        """Returns False when the user closes the stream (``q``)."""
        if self.labels_dir:
            path = osp.join(self.labels_dir, f'{index:06d}.png')
            if not cv2.imwrite(path, labels):
                raise VideoError(f'cannot write {path}')
        if self.video is None and self.window is None:
            return True
        painted = overlay(frame, labels, self.palette, self.opacity)
        if self.show_fps:
            cv2.putText(painted, f'{fps:.1f} FPS', (10, 30),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2,
                        cv2.LINE_AA)
        if self.video is not None:
            self.video.write(painted)
        if self.window is not None:
            cv2.imshow(self.window, painted)
            return cv2.waitKey(1) & 0xFF != ord('q')
        return True


def _run_threads(source, predictor, frame_writer, max_frames, num_frames):
    """Decode (thread) -> model (this thread) -> paint and encode (thread).

    The threads hand batches through bounded queues and give up as soon as
    any stage fails; the first error is raised here.
    """
    stop, end_of_stream, errors = threading.Event(), threading.Event(), []
    frames_q, results_q = queue.Queue(QUEUE_BATCHES), queue.Queue(
        QUEUE_BATCHES)
    stats = dict(frames=0, model_seconds=0.0)

    def read_frames():
        count, batch = 0, []
        while not (stop.is_set() or end_of_stream.is_set()
                   or count == max_frames):
            frame = source.read()
            if frame is None:
                break
            batch.append(frame)
            count += 1
            if len(batch) == predictor.batch_size:
                _put(frames_q, batch, stop)
                batch = []
        if batch:
            _put(frames_q, batch, stop)
        _put(frames_q, _END, stop)

    def write_results():
        progress = ProgressBar(num_frames)
        while (item := _get(results_q, stop)) is not _END:
            for frame, labels in zip(*item):
                fps = (stats['frames'] + 1) / (time.perf_counter() - start)
                if not frame_writer.write(stats['frames'], frame, labels,
                                          fps):
                    end_of_stream.set()
                stats['frames'] += 1
                progress.update()

    start = time.perf_counter()
    threads = [_Worker(read_frames, stop, errors),
               _Worker(write_results, stop, errors)]
    for thread in threads:
        thread.start()
    try:
        while True:
            try:
                batch = _get(frames_q, stop)
                if batch is _END:
                    break
                tic = time.perf_counter()
                labels = predictor.predict(batch)
                stats['model_seconds'] += time.perf_counter() - tic
                _put(results_q, (batch, labels), stop)
            except KeyboardInterrupt:
                if not source.is_camera:
                    raise
                end_of_stream.set()  # frames in flight are still written
        _put(results_q, _END, stop)
        threads[1].join()
    except BaseException:
        stop.set()
        raise
    finally:
        for thread in threads:
            thread.join(timeout=5)
    if errors:
        raise errors[0]
    stats['seconds'] = time.perf_counter() - start
    return stats


def segment_video(source, predictor, out=None, out_labels=None, opacity=0.5,
                  show_fps=False, max_frames=None, show=False):
    """Segment every frame of ``source`` (a :class:`FrameSource`) with
    ``predictor`` (a :class:`SegPredictor`).

    Writes an overlay video (same size and fps as the input) to ``out``
    and train-id label PNGs ``000000.png``... to the folder ``out_labels``.
    Returns the frame count and timings. With a camera, Ctrl-C (or ``q`` in
    the window) ends the stream and keeps the outputs; with files it aborts.
    """
    max_frames = max_frames or None
    if not 0 <= opacity <= 1:
        raise VideoError(f'opacity must lie in [0, 1], got {opacity}')
    check_outputs(out, out_labels)
    window = source.name if show else None
    if show:
        try:
            cv2.namedWindow(window, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise VideoError('--show needs OpenCV with GUI support '
                             '(opencv-python, not -headless)') from None
    num_frames = source.num_frames
    if max_frames:
        num_frames = min(num_frames or max_frames, max_frames)
    with ExitStack() as outputs:
        video = labels_dir = None
        if out:
            fourcc = FOURCC[osp.splitext(out)[1].lower()]
            video = cv2.VideoWriter(
                outputs.enter_context(atomic_output(out)),
                cv2.VideoWriter_fourcc(*fourcc), source.fps, source.size)
            outputs.callback(video.release)  # runs before the rename
            if not video.isOpened():
                raise VideoError(f'cannot write video {out}: OpenCV cannot '
                                 f'open a {fourcc} writer there')
        if out_labels:
            labels_dir = outputs.enter_context(atomic_output(out_labels))
            os.makedirs(labels_dir)
        frame_writer = _FrameWriter(
            video, labels_dir, bgr_palette(
                predictor.model.dataset_meta['palette']), opacity, show_fps,
            window)
        stats = _run_threads(source, predictor, frame_writer, max_frames,
                             num_frames)
    if source.num_frames and not max_frames and \
            stats['frames'] < source.num_frames:
        print_log(f'{source.name}: decoded {stats["frames"]} of the '
                  f'{source.num_frames} frames it announces',
                  logger='current')
    return stats
