"""Frames to segment: a video file, a folder of images or a camera."""
import math
import os.path as osp

import cv2
from mmengine.utils import scandir

from ...utils.cli import VIDEO_FPS_RANGE as FPS_RANGE
from ...utils.errors import UserError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
#: For a folder of frames, and a video or camera that reports no rate.
DEFAULT_FPS = 30.0
DECODERS = ('opencv', 'pyav')


class VideoError(UserError, ValueError):
    """An input or output the video pipeline cannot use."""


def _pyav():
    try:
        import av
    except ImportError:
        return None
    return av


class _PyAVReader:
    """Frames of a video file through PyAV (FFmpeg), decoded with FFmpeg's
    own threads."""

    def __init__(self, path):
        av = _pyav()
        try:
            self._container = av.open(path)
            stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError):
            raise VideoError(f'cannot open video {path}: not a video file, '
                             'or an unsupported container') from None
        stream.thread_type = 'AUTO'
        self.num_frames = max(stream.frames, 0)
        rate = stream.average_rate
        self.fps = float(rate) if rate else None
        self._frames = self._container.decode(stream)
        self._error = av.error.FFmpegError

    def read(self):
        try:
            frame = next(self._frames, None)
        except self._error:  # a corrupt packet ends the stream
            return None
        return None if frame is None else frame.to_ndarray(format='bgr24')

    def close(self):
        self._container.close()


def _check_fps(fps, what, instead):
    low, high = FPS_RANGE
    if not (math.isfinite(fps) and low <= fps <= high):
        raise VideoError(f'{what}: a frame rate must lie in {low:g}..'
                         f'{high:g} fps; {instead}')


class FrameSource:
    """BGR frames of a video file, a folder of images or a camera (an int
    or a string of digits). The first frame is read on opening, so a bad
    input fails here, before a model is loaded or an output created.

    Attributes: ``fps``, ``size`` (width, height), ``num_frames`` (0 when
    unknown) and ``is_camera``. ``decoder`` picks OpenCV (the fastest
    measured) or PyAV for video files.
    """

    def __init__(self, source, fps=None, decoder='opencv'):
        self.name = str(source)
        if fps is not None:
            _check_fps(fps, f'--fps {fps:g}', 'give one')
        self.is_camera = isinstance(source, int) or self.name.isdigit()
        self._capture, self._files, self._reader = None, None, None
        if decoder not in DECODERS:
            raise VideoError(f'unknown decoder {decoder!r}; choose from '
                             f'{", ".join(DECODERS)}')
        if decoder == 'pyav' and _pyav() is None:
            raise VideoError('--decoder pyav needs PyAV: pip install av')
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
        elif decoder == 'pyav':
            self._reader = _PyAVReader(source)
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
        if self._reader is not None:
            self.num_frames = self._reader.num_frames
        elif self._capture is not None and not self.is_camera:
            self.num_frames = max(
                int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        reported = self._reported_fps()
        if fps is None and reported is not None:
            _check_fps(reported, f'{self.name} reports {reported:g} fps',
                       'give its real rate with --fps')
        self.fps = fps or reported or DEFAULT_FPS

    @property
    def path(self):
        """The input file (None for a camera or a folder)."""
        return None if self.is_camera or self._files else self.name

    def _reported_fps(self):
        """The rate in the header; None where there is none (some say 0)."""
        if self._reader is not None:
            return self._reader.fps
        if self._capture is None:
            return None
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return fps if fps > 0 else None

    def _read(self, into=None):
        if self._reader is not None:
            return self._reader.read()
        if self._capture is not None:
            ok, frame = (self._capture.read() if into is None else
                         self._capture.read(into))
            if ok and into is not None and \
                    frame.ctypes.data == into.ctypes.data:
                return into
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

    def read(self, into=None):
        """The next frame, or None at the end. ``into``: an ``H x W x 3``
        uint8 array for the decoder to write the frame into where it can
        (OpenCV's; 6 MB a copy saved at 2048x1024), returned itself then."""
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        return self._read(into)

    def close(self):
        if self._capture is not None:
            self._capture.release()
        if self._reader is not None:
            self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
