"""tools/video_demo.py: outputs that match the input frame for frame, and
bad inputs or outputs that fail with one line and leave nothing behind."""
import contextlib
import io
import os
import os.path as osp
import threading

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, load_tool, randomize_norms, read_video
from mmengine.config import Config

from mmseg.datasets import CityscapesDataset
from repvgg_seg.apis import init_segmentor
from repvgg_seg.datasets import make_driving_video
from repvgg_seg.deploy import SegPredictor
from repvgg_seg.models import build_model
from repvgg_seg.deploy.video.pipeline import _Worker
from repvgg_seg.utils.cli import USER_ERROR_EXIT, run_cli

CONFIG = osp.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a0_citymini.py')
NUM_FRAMES, FPS, SIZE = 5, 7.0, (128, 64)  # size as (width, height)


def demo(*args):
    """tools/video_demo.py in this process (as its ``__main__`` runs it);
    returns what it printed, or raises ``SystemExit`` with the exit code
    and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_cli(load_tool('video_demo').main, [str(a) for a in args])
        except SystemExit as exc:
            if exc.code:
                raise SystemExit(exc.code, err.getvalue()) from None
    return out.getvalue()


def assert_fails_cleanly(args, expected, folder):
    """One-line error, and ``folder`` holds what it held before."""
    before = sorted(os.listdir(folder))
    with pytest.raises(SystemExit) as exc:
        demo(*args)
    code, stderr = exc.value.args
    assert code == USER_ERROR_EXIT
    assert 'Traceback' not in stderr, stderr
    lines = [line for line in stderr.splitlines()
             if line.startswith('error: ')]  # the rest: library warnings
    assert len(lines) == 1, stderr
    assert expected in lines[0]
    assert sorted(os.listdir(folder)) == before
    assert not [t for t in threading.enumerate() if isinstance(t, _Worker)]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A training-form checkpoint with random BN statistics: the demo must
    fuse it on load. No training needed, the labels only need to be valid."""
    model = randomize_norms(build_model(Config.fromfile(CONFIG)))
    path = tmp_path_factory.mktemp('model') / 'random.pth'
    dataset_meta = {k: CityscapesDataset.METAINFO[k]
                    for k in ('classes', 'palette')}
    torch.save(dict(meta=dict(dataset_meta=dataset_meta),
                    state_dict=model.state_dict()), path)
    return str(path)


@pytest.fixture(scope='module')
def video(tmp_path_factory):
    folder = tmp_path_factory.mktemp('video')
    return make_driving_video(str(folder / 'drive.mp4'), NUM_FRAMES, FPS,
                              SIZE)


def test_overlay_and_labels_match_the_input(video, checkpoint, tmp_path):
    out, labels_dir = tmp_path / 'overlay.mp4', tmp_path / 'labels'
    printed = demo(video, CONFIG, checkpoint, '--out', out, '--out-labels',
                   labels_dir, '--batch-size', 2, '--show-fps')
    assert sorted(os.listdir(tmp_path)) == ['labels', 'overlay.mp4']
    frames, fps = read_video(out)
    assert len(frames) == NUM_FRAMES and fps == FPS
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert f'{NUM_FRAMES} frames of 128x64 at 7 fps' in printed
    assert 'FPS end to end' in printed and 'FPS model only' in printed
    names = sorted(os.listdir(labels_dir))
    assert names == [f'{i:06d}.png' for i in range(NUM_FRAMES)]
    labels = [cv2.imread(str(labels_dir / n), cv2.IMREAD_UNCHANGED)
              for n in names]
    for label in labels:
        assert label.dtype == np.uint8 and label.shape == (SIZE[1], SIZE[0])
        assert label.max() <= 18  # train ids; 255 (ignore) never predicted
    # frame i's labels are the model's prediction for input frame i
    predictor = SegPredictor(init_segmentor(CONFIG, checkpoint, fuse=True))
    expected = predictor.predict(read_video(video)[0])
    for label, want in zip(labels, expected):
        assert (label == want).mean() > 0.999


def test_folder_of_frames(video, checkpoint, tmp_path):
    frames_dir = tmp_path / 'frames'
    frames_dir.mkdir()
    for i, frame in enumerate(read_video(video)[0][:3]):
        cv2.imwrite(str(frames_dir / f'{i:04d}.png'), frame)
    out = tmp_path / 'overlay.avi'
    demo(frames_dir, CONFIG, checkpoint, '--out', out, '--fps', 5)
    frames, fps = read_video(out)
    assert len(frames) == 3 and fps == 5
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)


@pytest.mark.parametrize('kind, expected', [
    ('missing', 'does not exist'),
    ('empty', 'is empty (0 bytes)'),
    ('random_bytes', 'cannot open video'),
    ('empty_folder', 'holds no images'),
])
def test_bad_input_fails_cleanly(kind, expected, checkpoint, tmp_path):
    source = tmp_path / ('frames' if kind == 'empty_folder' else 'in.mp4')
    if kind == 'empty':
        source.write_bytes(b'')
    elif kind == 'random_bytes':
        source.write_bytes(np.random.default_rng(0).bytes(20000))
    elif kind == 'empty_folder':
        source.mkdir()
    assert_fails_cleanly(
        [source, CONFIG, checkpoint, '--out', tmp_path / 'out.mp4',
         '--out-labels', tmp_path / 'labels'], expected, tmp_path)


@pytest.mark.parametrize('out, expected', [
    ('blocker/overlay.mp4', 'cannot create output folder'),
    ('overlay.xyz', 'use a .mp4, .avi, .mkv file name'),
])
def test_unusable_output_fails_cleanly(out, expected, video, checkpoint,
                                       tmp_path):
    (tmp_path / 'blocker').write_text('a file where a folder should be')
    assert_fails_cleanly([video, CONFIG, checkpoint, '--out', tmp_path / out],
                         expected, tmp_path)


def test_failure_midway_removes_partial_output(video, checkpoint, tmp_path):
    """A frame that breaks after the output was started: the reader thread
    stops the run, and the half-written video and labels are removed."""
    frames_dir = tmp_path / 'frames'
    frames_dir.mkdir()
    for i, frame in enumerate(read_video(video)[0][:2]):
        cv2.imwrite(str(frames_dir / f'{i:04d}.png'), frame)
    (frames_dir / '0002.png').write_bytes(b'not a png')
    assert_fails_cleanly(
        [frames_dir, CONFIG, checkpoint, '--out', tmp_path / 'out.mp4',
         '--out-labels', tmp_path / 'labels'], 'cannot decode frame',
        tmp_path)


@pytest.mark.parametrize('via_link', [False, True])
def test_out_naming_the_input_is_refused(video, checkpoint, tmp_path,
                                         via_link):
    """--out IN.mp4 would overwrite the video being read."""
    source = tmp_path / 'in.mp4'
    source.write_bytes(open(video, 'rb').read())
    out = source
    if via_link:
        out = tmp_path / 'link.mp4'
        os.symlink(source, out)
    before = source.read_bytes()
    assert_fails_cleanly([source, CONFIG, checkpoint, '--out', out],
                         'is the input video', tmp_path)
    assert source.read_bytes() == before


def test_unknown_codec_fails_cleanly(video, checkpoint, tmp_path):
    assert_fails_cleanly([video, CONFIG, checkpoint, '--out',
                          tmp_path / 'o.mp4', '--codec', 'no_such_codec'],
                         'cannot open the no_such_codec encoder', tmp_path)
