"""The video pipeline: the overlay is the palette blend of the labels (on the
CPU and in the tensor form the GPU runs), the output is H.264 with the
input's frames, size and fps, --realtime drops frames instead of queueing,
and errors or Ctrl-C leave no output."""
import errno
import os
import threading
import time

import av
import cv2
import numpy as np
import pytest
import torch
from helpers import read_video

from mmseg.datasets import CityscapesDataset
from repvgg_seg.datasets import make_driving_video
from repvgg_seg.deploy import FrameSource, VideoError, segment_video
from repvgg_seg.deploy.video import writers
from repvgg_seg.deploy.video.gpu import TensorOverlay, bgr_to_yuv420
from repvgg_seg.deploy.video.overlay import (CPUOverlay, bgr_palette,
                                             reference_overlay)
from repvgg_seg.deploy.video.pipeline import DECODE_AHEAD, REALTIME_QUEUE
from repvgg_seg.utils.errors import UserError

PALETTE = CityscapesDataset.METAINFO['palette']
SIZE = (64, 32)  # width, height


def random_frame_and_labels(seed=0, size=(48, 40)):
    rng = np.random.default_rng(seed)
    width, height = size
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, (height, width), dtype=np.uint8)
    labels[0] = 255  # ignore: black
    return frame, labels


@pytest.mark.parametrize('opacity', [0.0, 0.3, 0.5, 1.0])
def test_overlay_is_the_palette_blend(opacity):
    frame, labels = random_frame_and_labels()
    palette = bgr_palette(PALETTE)
    blended = CPUOverlay(palette, opacity)(frame, labels)
    assert (blended == reference_overlay(frame, labels, palette,
                                         opacity)).all()
    colours = np.asarray(PALETTE, np.uint8)[:, ::-1]  # RGB -> BGR
    expected = np.where(labels[..., None] == 255, 0, colours[labels % 19])
    if opacity == 1.0:
        assert (blended == expected).all()
    elif opacity == 0.0:
        assert (blended == frame).all()
    else:  # within rounding of the float blend
        exact = frame * (1 - opacity) + expected * opacity
        assert np.abs(blended - exact).max() <= 1


def test_tensor_overlay_equals_the_cpu_overlay():
    """The GPU's overlay, run here on CPU tensors: the same bytes."""
    frame, labels = random_frame_and_labels(1)
    palette = bgr_palette(PALETTE)
    blended = TensorOverlay(palette, 0.4, 'cpu')(
        torch.from_numpy(frame[None]), torch.from_numpy(labels[None]))
    assert (blended[0].numpy() == CPUOverlay(palette, 0.4)(frame,
                                                           labels)).all()


def test_yuv420_matches_opencv():
    frame, _ = random_frame_and_labels(2)
    ours = bgr_to_yuv420(torch.from_numpy(frame[None]))[0].numpy()
    theirs = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    assert ours.shape == theirs.shape
    height = frame.shape[0]
    assert np.abs(ours[:height].astype(int) - theirs[:height]).max() <= 1
    flat = np.full_like(frame, (30, 140, 220))  # chroma of one colour
    ours = bgr_to_yuv420(torch.from_numpy(flat[None]))[0].numpy()
    theirs = cv2.cvtColor(flat, cv2.COLOR_BGR2YUV_I420)
    assert np.abs(ours.astype(int) - theirs).max() <= 1


class StubPredictor:
    """A model that predicts label ``frame index % 19`` everywhere (read
    off the frame's first pixel), and can be slowed or interrupted."""

    batch_size, fast = 1, None

    def __init__(self, gate=None, interrupt_at=None, delay=0):
        self.model = type('Model', (), {})()
        self.model.dataset_meta = dict(palette=PALETTE)
        self.gate, self.interrupt_at, self.calls = gate, interrupt_at, 0
        self.delay = delay

    def predict(self, frames):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        if self.gate is not None:
            self.gate.wait(timeout=30)
        time.sleep(self.delay)
        return [np.full(f.shape[:2], f[0, 0, 0] % 19, np.uint8)
                for f in frames]


class EndSignallingSource(FrameSource):
    """Sets ``ended`` once the last frame has been read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.ended = threading.Event()

    def read(self):
        frame = super().read()
        if frame is None:
            self.ended.set()
        return frame


@pytest.fixture(scope='module')
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp('video') / 'drive.mp4'
    return make_driving_video(str(path), 12, 50.0, SIZE)


def test_output_is_h264_with_the_inputs_frames(video, tmp_path):
    out = str(tmp_path / 'overlay.mp4')
    with FrameSource(video) as source:
        report = segment_video(source, StubPredictor(), out, crf=5,
                               progress=False)
    assert report['codec'] == 'libx264' and report['frames'] == 12
    with av.open(out) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == 'h264'
        assert stream.average_rate == 50
        assert (stream.width, stream.height) == SIZE
        decoded = [f.to_ndarray(format='bgr24')
                   for f in container.decode(stream)]
    inputs, fps = read_video(video)
    frames, out_fps = read_video(out)  # OpenCV decodes it too
    assert len(decoded) == len(frames) == len(inputs) == 12
    assert out_fps == fps == 50
    palette = bgr_palette(PALETTE)
    for frame, painted in zip(inputs, frames):
        labels = np.full(frame.shape[:2], frame[0, 0, 0] % 19, np.uint8)
        expected = reference_overlay(frame, labels, palette, 0.5)
        error = np.abs(painted.astype(int) - expected).mean()
        assert error < 3  # H.264 at CRF 5 and 4:2:0 chroma
        assert error < np.abs(painted.astype(int) - frame).mean() / 2


def test_opencv_writer_without_pyav(video, tmp_path, monkeypatch):
    monkeypatch.setattr(writers, '_pyav', lambda: None)
    out = str(tmp_path / 'overlay.mp4')
    with FrameSource(video) as source:
        report = segment_video(source, StubPredictor(), out, progress=False)
    assert report['codec'] == 'mp4v'
    frames, fps = read_video(out)
    assert len(frames) == 12 and fps == 50


def test_pyav_decoder_reads_what_opencv_reads(video):
    with FrameSource(video, decoder='pyav') as source:
        assert source.fps == 50 and source.size == SIZE
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    expected, _ = read_video(video)
    assert len(frames) == len(expected)
    for a, b in zip(frames, expected):
        assert np.abs(a.astype(int) - b).mean() < 1


def test_realtime_drops_frames_and_bounds_the_wait(video, tmp_path):
    """The model is held until the whole stream was read: in real-time
    mode the frames that came meanwhile are dropped, and no frame waited
    behind more than the real-time queue."""
    with EndSignallingSource(video) as source:
        predictor = StubPredictor(gate=source.ended)
        report = segment_video(source, predictor, str(tmp_path / 'o.mp4'),
                               realtime=True, progress=False)
    assert report['dropped'] > 0
    assert report['frames'] + report['dropped'] == 12
    assert max(report['queue_waits']) <= REALTIME_QUEUE
    assert len(read_video(tmp_path / 'o.mp4')[0]) == report['frames']


def test_files_queue_instead_of_dropping(video):
    """A slow model reading a file: every frame is segmented, and the
    decoder stays at most :data:`DECODE_AHEAD` batches ahead."""
    with FrameSource(video) as source:
        report = segment_video(source, StubPredictor(delay=0.01),
                               progress=False)
    assert report['frames'] == 12 and report['dropped'] == 0
    assert max(report['queue_waits']) <= DECODE_AHEAD


def test_ctrl_c_leaves_no_output(video, tmp_path):
    with FrameSource(video) as source, pytest.raises(KeyboardInterrupt):
        segment_video(source, StubPredictor(interrupt_at=4),
                      str(tmp_path / 'o.mp4'), str(tmp_path / 'labels'),
                      progress=False)
    assert os.listdir(tmp_path) == []


def test_write_error_is_not_success(video, tmp_path, monkeypatch):
    def disk_full(self, frame):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(writers.PyAVWriter, 'write', disk_full)
    with FrameSource(video) as source, pytest.raises(OSError,
                                                     match='No space left'):
        segment_video(source, StubPredictor(), str(tmp_path / 'o.mp4'),
                      progress=False)
    assert os.listdir(tmp_path) == []


def test_flush_error_is_not_success(video, tmp_path, monkeypatch):
    """An error when the encoder flushes at the end (the last packets)."""
    def failing_mux(self, video_frame):
        if video_frame is None:
            raise VideoError(f'cannot write video {self.name}: disk full')

    monkeypatch.setattr(writers.PyAVWriter, '_mux', failing_mux)
    with FrameSource(video) as source, pytest.raises(UserError,
                                                     match='disk full'):
        segment_video(source, StubPredictor(), str(tmp_path / 'o.mp4'),
                      progress=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('link', [False, True])
def test_out_is_the_input_is_refused(video, tmp_path, link):
    target = video
    if link:
        target = str(tmp_path / 'link.mp4')
        os.symlink(video, target)
    before = open(video, 'rb').read()
    with FrameSource(video) as source, pytest.raises(VideoError,
                                                     match='is the input'):
        segment_video(source, StubPredictor(), target, progress=False)
    assert open(video, 'rb').read() == before
