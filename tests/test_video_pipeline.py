"""The video pipeline: the overlay is the palette blend of the labels (on the
CPU and in the tensor form the GPU runs), the output is H.264 with the
input's frames, size and fps, --realtime drops frames instead of queueing,
and errors or Ctrl-C leave no output."""
import errno
import gc
import os
import threading
import time
from fractions import Fraction

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
from repvgg_seg.deploy.video.pipeline import (DECODE_AHEAD, REALTIME_QUEUE,
                                              _Worker)

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

    def read(self, into=None):
        frame = super().read(into)
        if frame is None:
            self.ended.set()
        return frame


@pytest.fixture(scope='module')
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp('video') / 'drive.mp4'
    return make_driving_video(str(path), 12, 50.0, SIZE)


@pytest.mark.parametrize('encoder_threads', [1, 2, 0])
def test_output_is_h264_with_the_inputs_frames(video, tmp_path,
                                               encoder_threads):
    """Whatever the encoder's threads: every frame, in order, at the
    input's size and rate (timestamps one frame apart)."""
    out = str(tmp_path / 'overlay.mp4')
    with FrameSource(video) as source:
        report = segment_video(source, StubPredictor(), out, crf=5,
                               progress=False,
                               encoder_threads=encoder_threads)
    assert report['codec'] == 'libx264' and report['frames'] == 12
    with av.open(out) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == 'h264'
        assert stream.average_rate == 50
        assert (stream.width, stream.height) == SIZE
        decoded = list(container.decode(stream))
    assert [f.time for f in decoded] == pytest.approx(
        [i / 50 for i in range(12)])
    decoded = [f.to_ndarray(format='bgr24') for f in decoded]
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


@pytest.mark.parametrize('threads', [1, 2, 0])
def test_writer_may_reuse_its_buffer(threads, tmp_path):
    """The pipeline refills a slot's buffer once its frames were written:
    the encoder (handed the buffer itself) must have copied each frame,
    frame threads or not."""
    out = str(tmp_path / 'o.mp4')
    writer = writers.open_video_writer(out, 25, SIZE, crf=0,
                                       threads=threads)
    buffer = np.empty((SIZE[1] * 3 // 2, SIZE[0]), np.uint8)
    for index in range(10):
        buffer[:] = 20 * index
        writer.write(buffer)
    writer.close()
    writer.commit()
    with av.open(out) as container:
        planes = [f.to_ndarray(format='yuv420p') for f in container.decode(
            container.streams.video[0])]
    assert [int(np.median(p)) for p in planes] == [20 * i for i in range(10)]


def test_opencv_writer_without_pyav(video, tmp_path, monkeypatch):
    monkeypatch.setattr(writers, '_pyav', lambda: None)
    out = str(tmp_path / 'overlay.mp4')
    with FrameSource(video) as source:
        report = segment_video(source, StubPredictor(), out, progress=False)
    assert report['codec'] == 'mp4v'
    frames, fps = read_video(out)
    assert len(frames) == 12 and fps == 50


@pytest.fixture
def notices(monkeypatch):
    """The lines the video writers print (MMEngine's logger keeps the
    stream it first saw: pytest's capture would be closed under it)."""
    lines = []
    monkeypatch.setattr(writers, 'print_log',
                        lambda message, **kwargs: lines.append(message))
    return lines


@pytest.fixture
def odd_sized_frames(tmp_path):
    """A folder of four 33x17 frames (H.264 4:2:0 needs even sides):
    gradients, so that a crop or a rescale shows."""
    folder = tmp_path / 'frames'
    folder.mkdir()
    rows, cols = np.mgrid[0:17, 0:33]
    for index in range(4):
        frame = np.stack([cols * 7, rows * 14, np.full_like(rows, 60 * index)],
                         axis=-1).astype(np.uint8)
        cv2.imwrite(str(folder / f'{index:03d}.png'), frame)
    return str(folder)


@pytest.mark.parametrize('name, codec, pixel_format', [
    ('o.mp4', 'h264', 'yuv444p'), ('o.mkv', 'h264', 'yuv444p'),
    ('o.avi', 'mjpeg', 'yuvj420p')])
def test_odd_sized_video_keeps_its_size(name, codec, pixel_format,
                                        odd_sized_frames, tmp_path,
                                        notices):
    """33x17 in, 33x17 out (it came out 32x16 without a word): H.264 in
    4:4:4, which holds odd sides, and a line that says so."""
    out = str(tmp_path / name)
    with FrameSource(odd_sized_frames) as source:
        segment_video(source, StubPredictor(), out, opacity=0.0, crf=0,
                      progress=False)
    with av.open(out) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec
        assert stream.codec_context.pix_fmt == pixel_format
        frames = [f.to_ndarray(format='bgr24')
                  for f in container.decode(stream)]
    inputs, _ = read_video(odd_sized_frames + '/%03d.png')
    assert len(frames) == len(inputs) == 4
    for frame, expected in zip(frames, inputs):
        assert frame.shape == (17, 33, 3)
        assert np.abs(frame.astype(int) - expected).mean() < 3
    said = any('33x17 has an odd side' in line for line in notices)
    assert said == (codec == 'h264')


def test_opencv_writer_says_it_crops_an_odd_size(odd_sized_frames, tmp_path,
                                                  notices, monkeypatch):
    monkeypatch.setattr(writers, '_pyav', lambda: None)
    out = str(tmp_path / 'o.mp4')
    with FrameSource(odd_sized_frames) as source:
        segment_video(source, StubPredictor(), out, progress=False)
    assert read_video(out)[0][0].shape == (16, 32, 3)
    assert any("OpenCV's writer makes the 33x17 video 32x16" in line
               for line in notices)


def test_frames_are_decoded_into_the_buffer_given(video):
    """The decoder writes each frame into the slot's buffer itself (no
    copy of it afterwards), the same frames as a plain read."""
    expected, _ = read_video(video)
    buffer = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    with FrameSource(video) as source:
        assert (source.read(buffer) == expected[0]).all()  # read on opening
        for frame in expected[1:]:
            assert source.read(buffer) is buffer
            assert (buffer == frame).all()
        assert source.read(buffer) is None


def test_old_objects_are_kept_out_of_garbage_collection(video):
    """During a run the objects from before it are frozen out of the
    collector's scans (a full scan stalls every stage), after it not."""
    frozen = []

    class Recording(StubPredictor):
        def predict(self, frames):
            frozen.append(gc.get_freeze_count())
            return super().predict(frames)

    with FrameSource(video) as source:
        report = segment_video(source, Recording(), progress=False)
    assert min(frozen) > 10000 and gc.get_freeze_count() == 0
    assert 'gc' in report['stage_ms']


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


@pytest.mark.parametrize('decoder', ['opencv', 'pyav'])
def test_a_header_rate_out_of_range_is_refused(decoder, tmp_path):
    """A header that says 0.001 fps (--realtime would wait 1000 s a frame,
    and the overlay would play at that rate): refused in one line, naming
    the file; --fps overrides it."""
    path = str(tmp_path / 'slow.mp4')
    with av.open(path, 'w') as container:
        stream = container.add_stream('libx264', rate=Fraction(1, 1000))
        stream.width, stream.height = SIZE
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(
                np.zeros((SIZE[1], SIZE[0], 3), np.uint8), format='bgr24')
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match=r'slow.mp4 reports 0.001 fps: a '
                       r'frame rate must lie in 0.1..1000 fps; give its '
                       r'real rate with --fps'):
        FrameSource(path, decoder=decoder)
    with FrameSource(path, fps=25, decoder=decoder) as source:
        assert source.fps == 25
    with pytest.raises(VideoError, match='--fps 1e-300: a frame rate'):
        FrameSource(path, fps=1e-300, decoder=decoder)


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


class DiskFullAfter:
    """A file that takes ``room`` bytes, then fails as a full disk."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, 'No space left on device')
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):  # seek, tell, close, closed
        return getattr(self.file, name)


def test_disk_full_while_encoding_fails_and_keeps_the_earlier_file(
        video, tmp_path, monkeypatch):
    """The disk fills while the encoder thread writes frames (small
    buffers, so FFmpeg writes as it goes): the run fails with the file's
    error, and the file of that name from before is left as it was."""
    monkeypatch.setattr(writers, 'IO_BUFFER', 512)
    real_open = writers.TempFile.open
    monkeypatch.setattr(writers.TempFile, 'open',
                        lambda self: DiskFullAfter(real_open(self), 2000))
    out = tmp_path / 'o.mp4'
    out.write_bytes(b'an earlier overlay')
    with FrameSource(video) as source, pytest.raises(
            VideoError, match='o.mp4: No space left on device') as exc:
        segment_video(source, StubPredictor(), str(out), crf=0,
                      progress=False)
    assert 'write' in [entry.name for entry in exc.traceback]  # not close
    assert os.listdir(tmp_path) == ['o.mp4']
    assert out.read_bytes() == b'an earlier overlay'
    assert not [t for t in threading.enumerate() if isinstance(t, _Worker)]


def test_flush_error_is_not_success(video, tmp_path, monkeypatch):
    """The disk fills as the file is finished (the buffered end of the
    video written out): the same failure, no file."""
    class FullAtTheEnd(DiskFullAfter):
        def close(self):
            self.file.close()
            raise OSError(errno.ENOSPC, 'No space left on device')

    real_open = writers.TempFile.open
    monkeypatch.setattr(writers.TempFile, 'open',
                        lambda self: FullAtTheEnd(real_open(self), 1 << 30))
    with FrameSource(video) as source, pytest.raises(
            VideoError, match='No space left on device') as exc:
        segment_video(source, StubPredictor(), str(tmp_path / 'o.mp4'),
                      progress=False)
    assert 'close' in [entry.name for entry in exc.traceback]
    assert os.listdir(tmp_path) == []


def test_links_planted_at_temporary_names_are_not_followed(
        video, tmp_path, monkeypatch):
    """Someone who can write to the output folder plants links where the
    writer could put its temporary file (the name it used to have, and the
    random name it draws first): neither link is followed, and the
    output is a new file."""
    victim = tmp_path / 'victim.txt'
    victim.write_bytes(b'not yours')
    names = iter(['aaaaaaaaaaaa', 'bbbbbbbbbbbb'])
    monkeypatch.setattr('secrets.token_hex', lambda nbytes: next(names))
    planted = [tmp_path / f'.tmp-o.{os.getpid()}.mp4',
               tmp_path / f'.tmp-{os.getpid()}-aaaaaaaaaaaa-o.mp4']
    for link in planted:
        os.symlink(victim, link)
    out = tmp_path / 'o.mp4'
    with FrameSource(video) as source:
        segment_video(source, StubPredictor(), str(out), progress=False)
    assert victim.read_bytes() == b'not yours'
    assert all(os.readlink(link) == str(victim) for link in planted)
    assert not out.is_symlink() and len(read_video(out)[0]) == 12
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['o.mp4', 'victim.txt'] + [link.name for link in planted])


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
