"""Overlay video writers: H.264 (.mp4/.mkv, browsers play it) or MJPEG (.avi)
through PyAV, NVENC where the GPU has it, OpenCV's writer where PyAV is not
installed.

Writers take planar yuv420p frames (``3H/2 x W`` uint8, what the encoder
wants, converted on the GPU or by OpenCV) or BGR frames. They fill a new
temporary file (never one planted at a predictable name) that only
``commit`` moves to the name asked for; errors while writing (disk full,
in the encoder's thread or when the file is finished) are raised, never
swallowed, and leave no file.
"""
import errno
import logging
import os
import os.path as osp
import secrets
from fractions import Fraction

import cv2
from mmengine.logging import print_log

from ...utils.files import TMP_PREFIX, same_file
from .sources import VideoError, _pyav

#: OpenCV's writers by extension (the fallback without PyAV).
OPENCV_FOURCC = {'.mp4': 'mp4v', '.avi': 'MJPG', '.mkv': 'mp4v'}
VIDEO_EXTENSIONS = tuple(OPENCV_FOURCC)
#: FFmpeg's container of each extension (a file object names no format).
CONTAINERS = {'.mp4': 'mp4', '.avi': 'avi', '.mkv': 'matroska'}
#: Tried in order by ``codec='auto'`` for .mp4/.mkv (the first that opens).
AUTO_CODECS = ('h264_nvenc', 'libx264')
#: 4:2:0 needs even sides; these keep an odd-sized video's size in 4:4:4.
ODD_SIZE_FORMATS = {'libx264': 'yuv444p', 'libx265': 'yuv444p'}
ODD_SIZE_CODECS = tuple(ODD_SIZE_FORMATS)
#: Encoders that copy a frame when they take it (FFmpeg's own frame
#: threads keep it instead): they may be handed the pipeline's buffer.
COPYING_ENCODERS = ('libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc')
DEFAULT_CRF, DEFAULT_PRESET = 23, 'ultrafast'
#: MJPEG quality (2 best .. 31), about OpenCV's JPEG quality 90.
MJPEG_QSCALE, FF_QP2LAMBDA = 3, 118
#: Bytes FFmpeg and Python buffer before writing (few writes a frame).
IO_BUFFER = 1 << 20
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
    if codec == 'mjpeg':  # FFmpeg's default is 200 kbit/s: blocks
        return dict(flags='qscale',
                    global_quality=str(MJPEG_QSCALE * FF_QP2LAMBDA))
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
        context.pix_fmt = stream_format(codec, size)
        context.time_base = Fraction(1, 30)
        context.open()
    except (av.error.FFmpegError, ValueError):  # unknown codec: ValueError
        return False
    return True


def stream_format(codec, size):
    """The pixel format ``codec`` stores a ``size`` video in: 4:2:0 where
    it can hold the size, else 4:4:4 (:data:`ODD_SIZE_FORMATS`)."""
    if codec == 'mjpeg':
        return 'yuvj420p'  # JPEG pads odd sides itself
    width, height = size
    if width % 2 == 0 and height % 2 == 0:
        return 'yuv420p'
    return ODD_SIZE_FORMATS.get(codec, 'yuv420p')


class TempFile:
    """The file a writer fills: created new next to ``path`` under a random
    name (``O_CREAT | O_EXCL | O_NOFOLLOW``: never an existing file, never
    through a link planted at the name), moved to ``path`` by
    :meth:`commit` once whole, so an earlier file of that name stays until
    then; :meth:`discard` removes it."""

    def __init__(self, path):
        self.path, self.committed = path, False
        folder, name = osp.split(osp.abspath(path))
        stem, ext = osp.splitext(name)
        flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                 os.O_CLOEXEC)
        while True:
            # the extension stays last: OpenCV picks the format by it
            self.tmp = osp.join(folder, f'{TMP_PREFIX}{os.getpid()}-'
                                f'{secrets.token_hex(6)}-{stem}{ext}')
            try:  # 0o666: the umask applies, as for open()
                self.fd = os.open(self.tmp, flags, 0o666)
                return
            except FileExistsError:
                continue
            except OSError as exc:
                raise VideoError(f'cannot write video {path}: '
                                 f'{exc.strerror}') from None

    def open(self):
        """A file object on the file (its own descriptor: closing it leaves
        the one :meth:`commit` syncs)."""
        return os.fdopen(os.dup(self.fd), 'wb', buffering=IO_BUFFER)

    def commit(self):
        """Sync the file to disk (a write error the kernel deferred shows
        here), then move it to ``path``."""
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise VideoError(f'cannot write video {self.path}: '
                             f'{exc.strerror}') from None
        os.close(self.fd)
        self.fd = None
        os.replace(self.tmp, self.path)
        self.committed = True

    def discard(self):
        """Remove the file (a no-op once committed)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if not self.committed and osp.lexists(self.tmp):
            os.remove(self.tmp)


class FFmpegFile:
    """The file object FFmpeg writes through: an OS error is kept (the
    first: the cause) and reported to FFmpeg as its error code, not
    raised (PyAV prints a traceback for each exception after the first,
    and FFmpeg goes on seeking and writing the trailer)."""

    def __init__(self, file):
        self.file, self.error = file, None

    def _call(self, method, *args):
        if self.error is None:
            try:
                return method(*args)
            except OSError as exc:
                self.error = exc
        return -(self.error.errno or errno.EIO)

    def write(self, data):
        return self._call(self.file.write, data)

    def seek(self, offset, whence=os.SEEK_SET):
        return self._call(self.file.seek, offset, whence)

    def tell(self):
        return self.file.tell()

    def seekable(self):
        return True

    def writable(self):
        return True

    @property
    def closed(self):  # PyAV writes no trailer into a closed file
        return self.file.closed

    def close(self):
        """Flush and close (raises the kept error, or the flush's)."""
        try:
            self.file.close()
        except OSError as exc:
            self.error = self.error or exc
        if self.error is not None:
            raise self.error


def _reason(exc):
    return exc.strerror if isinstance(exc, OSError) and exc.strerror \
        else str(exc)


class PyAVWriter:
    """An encoder and muxer through PyAV, writing a file object on a
    :class:`TempFile` (so that FFmpeg never opens a path). Frames get
    consecutive pts at ``fps``, so the file has exactly the input's rate and
    frame count.

    ``threads`` frames are encoded at once (frame threads: x264's slice
    threads, PyAV's default, split each frame and wait for all its slices
    before the next); 0 lets the encoder choose: every core (x264 runs 1.5
    threads a core)."""

    def __init__(self, path, fps, size, codec, crf=DEFAULT_CRF,
                 preset=DEFAULT_PRESET, threads=0):
        av = _pyav()
        self._av, self._error = av, av.error.FFmpegError
        self.codec, self.name = codec, path
        self.stream_format = stream_format(codec, size)
        # the pipeline paints yuv420p where the file is yuv420p (converted
        # on the GPU), else BGR for FFmpeg to convert
        self.pixel_format = ('yuv420p' if self.stream_format == 'yuv420p'
                             else 'bgr24')
        self._frame_from = (av.VideoFrame.from_numpy_buffer
                            if codec in COPYING_ENCODERS else
                            av.VideoFrame.from_ndarray)
        self._count = 0
        self._output, self._file, self._container = TempFile(path), None, None
        try:
            self._file = FFmpegFile(self._output.open())
            self._container = av.open(
                self._file, 'w', format=CONTAINERS[osp.splitext(path)[1]
                                                   .lower()],
                buffer_size=IO_BUFFER)
            rate = Fraction(fps).limit_denominator(1001000)
            self._stream = self._container.add_stream(
                codec, rate=rate, options=_options(codec, crf, preset))
            self._stream.width, self._stream.height = size
            self._stream.pix_fmt = self.stream_format
            context = self._stream.codec_context
            context.thread_type, context.thread_count = 'FRAME', threads
        except (self._error, ValueError, OSError) as exc:
            self.abort()
            raise VideoError(f'cannot write video {path} with {codec}: '
                             f'{_reason(exc)}') from None

    def write(self, frame):
        """One ``3H/2 x W`` yuv420p (or ``H x W x 3`` BGR) uint8 frame,
        handed over without a copy where the encoder copies it."""
        fmt = 'bgr24' if frame.ndim == 3 else 'yuv420p'
        video_frame = self._frame_from(frame, format=fmt)
        video_frame.pts = self._count
        self._count += 1
        self._mux(video_frame)

    def _mux(self, video_frame):
        try:
            self._container.mux(self._stream.encode(video_frame))
        except (self._error, OSError) as exc:
            self._fail(exc)

    def _fail(self, exc):
        """The one-line error, naming the file's own error where FFmpeg
        only saw its code."""
        raise VideoError(f'cannot write video {self.name}: '
                         f'{_reason(self._file.error or exc)}') from None

    def close(self):
        """Flush the encoder and finish the file (raises on failure)."""
        self._mux(None)
        try:
            self._container.close()  # the trailer, and the buffer flushed
            self._file.close()
        except (self._error, OSError) as exc:
            self._fail(exc)
        self._release()

    def commit(self):
        """Move the finished file to its name."""
        self._output.commit()

    def abort(self):
        """Release and remove the file, whatever state it is in (a no-op
        once committed)."""
        self._release()
        self._output.discard()

    def _release(self):
        """Close the file (first: PyAV then writes no trailer) and the
        container, and drop the encoder, so that it is freed and its
        threads end now, not at some later garbage collection (a forked
        process would inherit it, and hang joining threads it has not)."""
        for release in (self._file, self._container):
            try:
                if release is not None:
                    release.close()
            except (self._error, OSError):
                pass
        self._stream = self._container = None


class OpenCVWriter:
    """OpenCV's writer (mp4v/MJPG): the fallback without PyAV. It reports
    no write errors, so :meth:`close` reads the file back."""

    pixel_format = 'bgr24'

    def __init__(self, path, fps, size):
        self.name = path
        self.codec = OPENCV_FOURCC[osp.splitext(path)[1].lower()]
        self._output, self._count = TempFile(path), 0
        self._writer = cv2.VideoWriter(
            self._output.tmp, cv2.VideoWriter_fourcc(*self.codec), fps, size)
        if not self._writer.isOpened():
            self.abort()
            raise VideoError(f'cannot write video {self.name}: OpenCV cannot '
                             f'open a {self.codec} writer there')

    def write(self, frame):
        self._writer.write(frame)
        self._count += 1

    def close(self):
        """Finish the file, then read it back: every frame must be there
        (the header's count can be right in a truncated file)."""
        self._writer.release()
        capture, frames = cv2.VideoCapture(self._output.tmp), 0
        while capture.grab():
            frames += 1
        capture.release()
        if frames != self._count:
            raise VideoError(f'cannot write video {self.name}: {frames} of '
                             f'its {self._count} frames reached the file '
                             '(disk full?)')

    def commit(self):
        self._output.commit()

    def abort(self):
        self._writer.release()
        self._output.discard()


def choose_codec(path, codec='auto', size=(256, 128)):
    """The encoder for ``path``: ``auto`` is NVENC where it opens, else
    libx264 for .mp4/.mkv and MJPEG for .avi (PyAV installed), else
    OpenCV's. An odd size takes an encoder of :data:`ODD_SIZE_FORMATS`."""
    ext = osp.splitext(path)[1].lower()
    even = size[0] % 2 == 0 and size[1] % 2 == 0
    probe = (256 + size[0] % 2, 128 + size[1] % 2)  # small, same parity
    if codec == 'opencv' or (codec == 'auto' and _pyav() is None):
        return 'opencv'
    if codec == 'auto':
        if ext == '.avi':
            return 'mjpeg'
        candidates = AUTO_CODECS if even else ODD_SIZE_CODECS
        return next((c for c in candidates if codec_opens(c, probe)),
                    'opencv')
    if _pyav() is None:
        raise VideoError(f'--codec {codec} needs PyAV: pip install av')
    if not even and codec not in ODD_SIZE_CODECS + ('mjpeg',):
        raise VideoError(
            f'--codec {codec} needs an even width and height, the input is '
            f'{size[0]}x{size[1]}: use {", ".join(ODD_SIZE_CODECS)} or '
            'mjpeg, which keep it')
    if not codec_opens(codec, probe):
        raise VideoError(f'cannot open the {codec} encoder here: not in '
                         'this FFmpeg build, or no such GPU encoder')
    return codec


def open_video_writer(path, fps, size, codec='auto', crf=DEFAULT_CRF,
                      preset=DEFAULT_PRESET, threads=0):
    """A writer for :func:`choose_codec`'s encoder, filling a temporary
    file: ``close()`` finishes it, ``commit()`` moves it to ``path``,
    ``abort()`` removes it. ``threads``: :class:`PyAVWriter`'s. An
    odd-sized video keeps its size; one line says how (4:4:4), or that
    OpenCV's writer cannot."""
    codec = choose_codec(path, codec, size)
    width, height = size
    if codec == 'opencv':
        if width % 2 or height % 2:
            print_log(f'{path}: OpenCV\'s writer makes the {width}x{height} '
                      f'video {width // 2 * 2}x{height // 2 * 2} (even '
                      'sides); PyAV (pip install av) keeps its size',
                      logger='current', level=logging.WARNING)
        return OpenCVWriter(path, fps, size)
    writer = PyAVWriter(path, fps, size, codec, crf, preset, threads)
    if writer.stream_format in ODD_SIZE_FORMATS.values():
        print_log(f'{path}: {width}x{height} has an odd side, which 4:2:0 '
                  f'video cannot hold: written as 4:4:4 {codec} at '
                  f'{width}x{height} (FFmpeg, VLC and OpenCV play it, not '
                  'every browser)', logger='current', level=logging.WARNING)
    return writer


def write_label_png(path, labels):
    """Encode, then write with Python's file I/O, so a full disk raises
    (OpenCV's writer can leave an empty file and report success)."""
    ok, png = cv2.imencode('.png', labels)
    if not ok:
        raise VideoError(f'cannot encode the labels of {path} as PNG')
    with open(path, 'wb') as f:
        f.write(png.tobytes())
