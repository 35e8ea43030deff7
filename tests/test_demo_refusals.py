"""Refusals of the video and classification tools that were tracebacks or
aborts (red-team list): each is one ``error:`` line, exit 2, no output."""
import os
import re
import resource
import signal
import subprocess
import sys

import pytest
import torch
from helpers import REPO_ROOT

from repvgg_seg.datasets import make_driving_video
from repvgg_seg.models import build_model
from repvgg_seg.utils.config import read_config

TINY = os.path.join(REPO_ROOT, 'tests', 'configs',
                    'pspnet_repvgg_tiny_citymini.py')
CLASSIFIER = os.path.join(REPO_ROOT, 'configs', 'imagenet',
                          'repvgg_a0_tinyimagenet.py')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('refusals')
    state = build_model(read_config(TINY)).state_dict()
    palette = [[300, 0, 0]] + [[0, 0, 0]] * 18
    paths = dict(video=str(folder / 'drive.mp4'),
                 tiny=str(folder / 'tiny.pth'),
                 bad_palette=str(folder / 'bad_palette.pth'),
                 classifier=str(folder / 'classifier.pth'))
    make_driving_video(paths['video'], 10, 15, (128, 64), 0)
    torch.save({'state_dict': state}, paths['tiny'])
    torch.save({'state_dict': state, 'meta': {'dataset_meta': dict(
        classes=[f'c{i}' for i in range(19)], palette=palette)}},
        paths['bad_palette'])
    torch.save({'state_dict': build_model(read_config(CLASSIFIER))
                .state_dict()}, paths['classifier'])
    return paths


def run(*args, env=None, max_file_size=None):
    """The tool in a new process; ``max_file_size``: files it writes fail
    past this many bytes (``EFBIG``, a real write error, as a full disk;
    its output goes to pipes, which the limit spares)."""
    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not death
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (max_file_size, max_file_size))

    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, **(env or {})),
                          preexec_fn=limit_file_size if max_file_size
                          else None)


def assert_refused(result, pattern, out=None):
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith(('error: ', 'video_demo.py: error: ',
                                  'classify.py: error: '))]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.stderr
    if out is not None:
        assert not os.path.exists(out)


def test_palette_out_of_range_is_refused(files, tmp_path):
    out = tmp_path / 'o.mp4'
    assert_refused(run('tools/video_demo.py', files['video'], TINY,
                       files['bad_palette'], '--out', out),
                   r'palette .* RGB triples of 0\.\.255', out)


@pytest.mark.parametrize('tool', ['video_demo', 'classify'])
def test_unknown_device_is_refused(tool, files, tmp_path):
    out = tmp_path / 'o.mp4'
    args = ([files['video'], TINY, files['tiny'], '--out', out]
            if tool == 'video_demo' else
            [CLASSIFIER, files['classifier'], files['video']])
    assert_refused(run(f'tools/{tool}.py', *args, '--device', 'tpu'),
                   "unknown device 'tpu'", out)


def test_video_demo_refuses_a_classifier(files, tmp_path):
    out = tmp_path / 'o.mp4'
    assert_refused(run('tools/video_demo.py', files['video'], CLASSIFIER,
                       files['classifier'], '--out', out),
                   'builds a ImageClassifier, not a segmentor', out)


def test_classify_refuses_a_segmentor(files):
    assert_refused(run('tools/classify.py', TINY, files['tiny'],
                       files['video']),
                   'builds a EncoderDecoder, not a classifier')


def test_show_without_a_display_is_refused_not_aborted(files):
    env = {'DISPLAY': '', 'WAYLAND_DISPLAY': ''}
    result = run('tools/video_demo.py', files['video'], TINY, files['tiny'],
                 '--show', env=env)
    assert_refused(result, '--show needs a display')


@pytest.mark.parametrize('fps', ['0', '-5', 'nan', '1e30', '1e-300'])
def test_absurd_fps_is_refused(fps, files, tmp_path):
    out = tmp_path / 'o.mp4'
    assert_refused(run('tools/video_demo.py', files['video'], TINY,
                       files['tiny'], '--fps', fps, '--out', out),
                   'argument --fps', out)


@pytest.mark.parametrize('name, codec', [('o.mp4', 'auto'),
                                         ('o.avi', 'auto'),
                                         ('o.avi', 'opencv')])
def test_write_error_fails_and_keeps_the_earlier_file(name, codec, files,
                                                      tmp_path):
    """A write fails in the middle of the video (the file may not grow past
    6 kB; the whole video is ~16 kB): one error line, exit 2, no partial
    file, and the earlier file of that name untouched (the mp4 was
    unplayable, the avi held 3 of 10 frames, both "Saved")."""
    out = tmp_path / name
    out.write_bytes(b'an earlier overlay')
    result = run('tools/video_demo.py', files['video'], TINY, files['tiny'],
                 '--out', out, '--codec', codec, max_file_size=6000)
    assert_refused(result, f'cannot write video {out}: ')
    assert os.listdir(tmp_path) == [name]
    assert out.read_bytes() == b'an earlier overlay'


def test_non_positive_topk_is_refused(files):
    assert_refused(run('tools/classify.py', CLASSIFIER, files['classifier'],
                       files['video'], '--topk', '-3'), 'argument --topk')


def test_label_png_write_error_raises(tmp_path, monkeypatch):
    """A full disk raises (OpenCV's imwrite may report success with an
    empty file): the labels folder is then removed by its atomic output."""
    import io

    import numpy as np

    from repvgg_seg.deploy.video import writers

    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(28, 'No space left on device')

    monkeypatch.setattr(writers, 'open', lambda *a, **k: FullDisk(),
                        raising=False)
    with pytest.raises(OSError, match='No space left'):
        writers.write_label_png(str(tmp_path / 'x.png'),
                                np.zeros((4, 4), np.uint8))
