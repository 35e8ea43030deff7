"""Overlay video writers: H.264 through PyAV (browsers play it), NVENC where
the GPU has it, OpenCV's writer where PyAV is not installed.

Writers take planar yuv420p frames (``3H/2 x W`` uint8, what the encoder
wants, converted on the GPU or by OpenCV) or BGR frames; errors while
writing (disk full...) are raised, never swallowed.
"""
import os
import os.path as osp
from fractions import Fraction

import cv2

from ...utils.files import same_file
from .sources import VideoError, _pyav

#: OpenCV's writers by extension (the fallback without PyAV).
OPENCV_FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG', '.mkv': 'mp4v'}
VIDEO_EXTENSIONS = tuple(OPENCV_FOURCC)
#: Tried in order by ``codec='auto'`` for .mp4/.mkv (the first that opens).
AUTO_CODECS = ('h264_nvenc', 'libx264')
DEFAULT_CRF, DEFAULT_PRESET = 23, 'ultrafast'
#: NVENC's presets (p1 fastest .. p7 best) for the x264 names.
NVENC_PRESETS = {'ultrafast': 'p1', 'superfast': 'p1', 'veryfast': 'p2',
                 'faster': 'p3', 'fast': 'p4', 'medium': 'p4', 'slow': 'p5',
                 'slower': 'p6', 'veryslow': 'p7'}


def check_outputs(out=None, out_labels=None, inputs=()):
    """Refuse unusable outputs before any work; create their folders.
    ``inputs``: files the outputs must not overwrite."""
    if out is not None and osp.splitext(out)[1].lower() not in OPENCV_FOURCC:
        raise VideoError(f'cannot write {out}: use a '
                         f'{", ".join(VIDEO_EXTENSIONS)} file name')
    for path in inputs:
        if path and out and same_file(out, path):
            raise VideoError(f'--out {out} is the input video {path}: '
                             'writing it would destroy the input; choose '
                             'another name')
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


def _options(codec, crf, preset):
    if codec.endswith('_nvenc'):
        return dict(preset=NVENC_PRESETS.get(preset, preset), rc='vbr',
                    cq=str(crf))
    if codec in ('libx264', 'libx265'):
        return dict(preset=preset, crf=str(crf))
    return {}


def codec_opens(codec, size=(256, 128)):
    """Whether FFmpeg can open this encoder here (NVENC needs the GPU and
    its driver, not only the codec in the build)."""
    av = _pyav()
    if av is None:
        return False
    try:
        context = av.codec.CodecContext.create(codec, 'w')
        context.width, context.height = size
        context.pix_fmt = 'yuv420p'
        context.time_base = Fraction(1, 30)
        context.open()
    except (av.error.FFmpegError, ValueError):  # unknown codec: ValueError
        return False
    return True


class PyAVWriter:
    """An encoder and muxer through PyAV; frames get consecutive pts at
    ``fps``, so the file has exactly the input's rate and frame count."""

    pixel_format = 'yuv420p'

    def __init__(self, path, fps, size, codec, crf=DEFAULT_CRF,
                 preset=DEFAULT_PRESET, name=None):
        av = _pyav()
        self._error, self.name = av.error.FFmpegError, name or path
        self.codec, self._av = codec, av
        try:
            self._container = av.open(path, 'w')
            rate = Fraction(fps).limit_denominator(1001000)
            self._stream = self._container.add_stream(
                codec, rate=rate, options=_options(codec, crf, preset))
            self._stream.width, self._stream.height = size
            self._stream.pix_fmt = 'yuv420p'
            self._stream.codec_context.thread_count = 0  # FFmpeg's auto
        except (self._error, ValueError) as exc:
            raise VideoError(f'cannot write video {self.name} with {codec}: '
                             f'{exc}') from None
        self._count, self._closed = 0, False

    def write(self, frame):
        """One ``3H/2 x W`` yuv420p (or ``H x W x 3`` BGR) uint8 frame."""
        fmt = 'bgr24' if frame.ndim == 3 else 'yuv420p'
        video_frame = self._av.VideoFrame.from_ndarray(frame, format=fmt)
        video_frame.pts = self._count
        self._count += 1
        self._mux(video_frame)

    def _mux(self, video_frame):
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except (self._error, OSError) as exc:
            raise VideoError(f'cannot write video {self.name}: {exc}') \
                from None

    def close(self):
        """Flush the encoder and finish the file (raises on failure)."""
        try:
            self._mux(None)
        finally:
            self.abort()
        self._closed = True

    def abort(self):
        """Release the file whatever state it is in (it is removed)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except (self._error, OSError):
                pass


class OpenCVWriter:
    """OpenCV's writer (mp4v/MJPG): the fallback without PyAV. It reports
    no write errors, so :meth:`close` checks that a file came out."""

    pixel_format = 'bgr24'

    def __init__(self, path, fps, size, name=None):
        self.path, self.name = path, name or path
        self.codec = OPENCV_FOURCC[osp.splitext(path)[1].lower()]
        self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(
            *self.codec), fps, size)
        if not self._writer.isOpened():
            raise VideoError(f'cannot write video {self.name}: OpenCV cannot '
                             f'open a {self.codec} writer there')

    def write(self, frame):
        self._writer.write(frame)

    def abort(self):
        self._writer.release()

    def close(self):
        self._writer.release()
        if not osp.isfile(self.path) or osp.getsize(self.path) == 0:
            raise VideoError(f'cannot write video {self.name}: nothing was '
                             'written (disk full?)')


def choose_codec(path, codec='auto', size=(256, 128)):
    """The encoder for ``path``: ``auto`` is NVENC where it opens, else
    libx264 (PyAV installed, .mp4/.mkv, even size), else OpenCV's."""
    ext = osp.splitext(path)[1].lower()
    even = size[0] % 2 == 0 and size[1] % 2 == 0
    if codec == 'opencv' or (codec == 'auto' and (
            _pyav() is None or ext == '.avi' or not even)):
        return 'opencv'
    if codec == 'auto':
        return next((c for c in AUTO_CODECS if codec_opens(c)), 'opencv')
    if _pyav() is None:
        raise VideoError(f'--codec {codec} needs PyAV: pip install av')
    if not even:
        raise VideoError(f'--codec {codec} needs an even width and height, '
                         f'the input is {size[0]}x{size[1]}')
    if not codec_opens(codec):
        raise VideoError(f'cannot open the {codec} encoder here: not in '
                         'this FFmpeg build, or no such GPU encoder')
    return codec


def open_video_writer(path, fps, size, codec='auto', crf=DEFAULT_CRF,
                      preset=DEFAULT_PRESET, name=None):
    """A writer for :func:`choose_codec`'s encoder; ``name`` is the path to
    name in errors (``path`` may be a temporary file)."""
    codec = choose_codec(name or path, codec, size)
    if codec == 'opencv':
        return OpenCVWriter(path, fps, size, name)
    return PyAVWriter(path, fps, size, codec, crf, preset, name)


def write_label_png(path, labels):
    """Encode, then write with Python's file I/O, so a full disk raises
    (OpenCV's writer can leave an empty file and report success)."""
    ok, png = cv2.imencode('.png', labels)
    if not ok:
        raise VideoError(f'cannot encode the labels of {path} as PNG')
    with open(path, 'wb') as f:
        f.write(png.tobytes())
