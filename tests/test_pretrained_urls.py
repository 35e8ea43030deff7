"""Pretrained weights by URL: the configs name mmpretrain's ImageNet files,
downloads are cached the MMSeg way (torch hub's checkpoints folder), a
failed download stops tools/train.py with one line, and every checkpoint
source mmengine knows (URLs, model-zoo names, storage backends) goes through
the weights-only loader: a malicious file served from 127.0.0.1 never runs."""
import contextlib
import glob
import hashlib
import http.server
import json
import os
import os.path as osp
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from forked import run_forked
from helpers import REPO_ROOT, RunsShellCommand, build, serve_directory
from repvgg_seg.apis import check_checkpoint
from repvgg_seg.compat import (CheckpointError, DownloadError,
                               cached_download, checkpoint_cache_dir)
from repvgg_seg.compat import checkpoint_sources
from repvgg_seg.compat.checkpoint_sources import cached_path
from repvgg_seg.models.pretrained_urls import (MMPRETRAIN_REPVGG,
                                               PRETRAINED_URLS,
                                               fetch_pretrained,
                                               pretrained_url)
from repvgg_seg.utils.config import read_config
from repvgg_seg.utils.errors import InvalidArgument

TINY = dict(arch=dict(num_blocks=(1, 1, 1, 1), width_factor=(0.25, ) * 4))
CITYSCAPES_CONFIGS = sorted(
    f for f in glob.glob(osp.join(REPO_ROOT, 'configs', 'pspnet_repvgg_*.py'))
    if 'citymini' not in f)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh torch hub cache (and mmengine home) for each test."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    return tmp_path / 'torch' / 'hub' / 'checkpoints'


@pytest.fixture
def served(tmp_path):
    """``good.pth`` (tiny RepVGG weights, mmpretrain layout) and
    ``evil.pth`` (runs ``touch MARKER`` when unpickled) on 127.0.0.1."""
    root = tmp_path / 'www'
    root.mkdir()
    marker = tmp_path / 'pwned'
    state = {f'backbone.{k}': v for k, v in build(**TINY).state_dict().items()}
    torch.save({'state_dict': state, 'meta': {'epoch': 3}}, root / 'good.pth')
    torch.save({'state_dict': {}, 'payload': RunsShellCommand(
        f'touch {marker}')}, root / 'evil.pth')
    with serve_directory(root) as (url, requested):
        yield url, requested, marker, state


def test_every_cityscapes_config_names_the_table_url_of_its_arch():
    assert len(CITYSCAPES_CONFIGS) >= 13
    for path in CITYSCAPES_CONFIGS:
        backbone = read_config(path).model.backbone
        assert backbone.init_cfg.checkpoint == PRETRAINED_URLS[backbone.arch]
    assert all(url.startswith(MMPRETRAIN_REPVGG) and url.endswith('.pth')
               for url in PRETRAINED_URLS.values())


@pytest.mark.parametrize('arch', ['B2g2', 'B3g2'])
def test_archs_without_published_weights_say_so(arch):
    with pytest.raises(InvalidArgument, match=f'no ImageNet weights are '
                       f'published for RepVGG-{arch}.*init_cfg=None'):
        pretrained_url(arch)
    assert pretrained_url('D2se').endswith('cf3139b7.pth')


def test_url_checkpoint_loads_once_and_is_cached(served, cache):
    url, requested, _, state = served
    for _ in range(2):
        loaded = CheckpointLoader.load_checkpoint(f'{url}/good.pth')
        assert loaded['meta'] == {'epoch': 3}
        assert all(torch.equal(loaded['state_dict'][k], v)
                   for k, v in state.items())
    assert requested == ['/good.pth']  # the second load used the cache
    assert osp.isfile(cached_path(f'{url}/good.pth'))
    assert checkpoint_cache_dir() == str(cache)


def test_pretrained_url_initialises_the_backbone(served):
    url, requested, _, state = served
    model = build(**TINY, init_cfg=dict(type='Pretrained',
                                        checkpoint=f'{url}/good.pth'))
    model.init_weights()
    assert all(torch.equal(model.state_dict()[k[len('backbone.'):]], v)
               for k, v in state.items())


def _storage_backend(root):
    class Backend:
        def get(self, filepath):
            return (root / filepath.rsplit('/', 1)[1]).read_bytes()
    return lambda *args, **kwargs: Backend()


def _sources(url, tmp_path, monkeypatch):
    """Each way of naming the served ``evil.pth``."""
    monkeypatch.setattr(checkpoint_sources, 'get_torchvision_models',
                        lambda: {'evilnet': f'{url}/evil.pth'})
    monkeypatch.setattr(checkpoint_sources, 'get_mmcls_models',
                        lambda: {'evil_cls': f'{url}/evil.pth'})
    monkeypatch.setattr(checkpoint_sources, 'get_file_backend',
                        _storage_backend(tmp_path / 'www'))
    home = tmp_path / 'mmengine'
    home.mkdir(exist_ok=True)
    (home / 'open_mmlab.json').write_text(json.dumps(
        {'evil_mm': f'{url}/evil.pth'}))
    return [f'{url}/evil.pth', 'torchvision://evilnet', 'modelzoo://evilnet',
            'open-mmlab://evil_mm', 'openmmlab://evil_mm', 'mmcls://evil_cls',
            's3://bucket/evil.pth', 'open-mmlab:s3://bucket/evil.pth',
            str(tmp_path / 'www' / 'evil.pth')]


def test_malicious_checkpoint_is_refused_from_every_source(
        served, tmp_path, monkeypatch, cache):
    url, requested, marker, _ = served
    for source in _sources(url, tmp_path, monkeypatch):
        with pytest.raises(CheckpointError, match=r'refusing to load '
                           r'checkpoint .*evil\.pth.*nothing was executed'):
            CheckpointLoader.load_checkpoint(source)
        assert not marker.exists(), source
    assert not list(cache.rglob('evil.pth'))  # refused files leave the cache
    # proves the served file really runs its command when unpickled unsafely
    torch.load(tmp_path / 'www' / 'evil.pth', weights_only=False)
    assert marker.exists()


def test_malicious_url_as_init_cfg_load_from_or_test_checkpoint(served):
    url, _, marker, _ = served
    evil = f'{url}/evil.pth'
    model = build(**TINY, init_cfg=dict(type='Pretrained', checkpoint=evil))
    with pytest.raises(CheckpointError, match='refusing to load'):
        model.init_weights()  # what the Runner calls for init_cfg
    with pytest.raises(CheckpointError, match='refusing to load'):
        load_checkpoint(build(**TINY), evil)  # Runner's load_from / resume
    cfg = read_config(osp.join(REPO_ROOT, 'tests/configs/'
                               'pspnet_repvgg_tiny_citymini.py'))
    with pytest.raises(CheckpointError, match='refusing to load'):
        check_checkpoint(cfg, evil, whole_model=False)  # train's load_from
    assert not marker.exists()


def test_unsupported_prefixes_are_refused_not_loaded_unsafely():
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader.__module__.startswith('repvgg_seg.compat'), prefix
    with pytest.raises(CheckpointError, match='pavi:// are not loaded'):
        CheckpointLoader.load_checkpoint('pavi://model/evil.pth')


def _closed_port_url():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}/repvgg-A0.pth'


def test_failed_download_names_url_cache_and_where_to_put_the_file(cache):
    url = _closed_port_url()
    cfg = dict(backbone=dict(type='RepVGG', init_cfg=dict(
        type='Pretrained', checkpoint=url)))
    with pytest.raises(DownloadError) as info:
        fetch_pretrained(cfg)
    message = str(info.value)
    assert url in message and cached_path(url) in message
    assert cached_path(url).startswith(str(cache))
    assert '--cfg-options model.backbone.init_cfg.checkpoint=PATH' in message
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-written


def test_train_tool_stops_before_the_runner_when_offline(tmp_path, cache):
    url = _closed_port_url()
    work_dir = tmp_path / 'work'
    result = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/pspnet_repvgg_a0.py',
         '--work-dir', str(work_dir), '--cfg-options',
         f'model.backbone.init_cfg.checkpoint={url}'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith('error: model.backbone.init_cfg.checkpoint: '
                                f'cannot download {url}')
    assert f'put it at {cached_path(url)}' in lines[-1]
    assert 'Traceback' not in result.stderr and 'Config:' not in result.stdout
    assert not work_dir.exists()  # the Runner never started


# Downloads: timeouts, no leftovers, the cache keyed by URL, the name's hash

@contextlib.contextmanager
def stalling_server(first_bytes=b'', then=None):
    """An HTTP server on 127.0.0.1 whose first answer is ``first_bytes``
    and then silence (until the test ends); later requests get the file
    ``then`` when given. Yields the URL of ``/repvgg-A0.pth``."""
    silence = threading.Event()
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            if len(requests) == 1 or then is None:
                self.wfile.write(first_bytes)
                self.wfile.flush()
                silence.wait(60)
                return
            body = then.read_bytes()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}/repvgg-A0.pth'
    finally:
        silence.set()
        server.shutdown()
        server.server_close()
        thread.join()


PARTIAL_BODY = (b'HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n'
                + b'x' * 5000)


def leftovers(cache):
    return [p.name for p in cache.rglob('*') if p.is_file()]


@pytest.mark.parametrize('first_bytes', [b'', PARTIAL_BODY],
                         ids=['silent', 'stalls-mid-file'])
def test_stalled_download_times_out(first_bytes, cache, monkeypatch):
    monkeypatch.setenv('REPVGG_SEG_DOWNLOAD_TIMEOUT', '0.5')
    with stalling_server(first_bytes) as url:
        result = run_forked(lambda: cached_download(url), timeout=60)
    assert result.returncode == 1
    assert re.search(r'DownloadError: cannot download .*repvgg-A0.pth \(no '
                     r'data for 0.5 s; to wait longer set '
                     r'REPVGG_SEG_DOWNLOAD_TIMEOUT=SECONDS\)', result.stderr)
    assert leftovers(cache) == []


@pytest.mark.parametrize('value', ['0', '-1', 'abc', 'nan', 'inf'])
def test_download_timeout_must_be_positive(value, monkeypatch):
    monkeypatch.setenv('REPVGG_SEG_DOWNLOAD_TIMEOUT', value)
    with pytest.raises(InvalidArgument, match='REPVGG_SEG_DOWNLOAD_TIMEOUT'):
        cached_download('http://127.0.0.1:9/x.pth')


def test_interrupted_download_leaves_nothing(cache, monkeypatch):
    class CtrlCAfterFirstChunk(torch.hub.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt
    monkeypatch.setattr(torch.hub, 'tqdm', CtrlCAfterFirstChunk)
    with stalling_server(PARTIAL_BODY) as url:
        with pytest.raises(KeyboardInterrupt):
            cached_download(url, timeout=30)
    assert leftovers(cache) == []


def test_killed_download_is_cleaned_up_by_the_next(served, tmp_path, cache):
    """SIGKILL leaves the temporary file; the next download of the URL
    removes it."""
    with stalling_server(PARTIAL_BODY, then=tmp_path / 'www' /
                         'good.pth') as url:
        pid = os.fork()
        if pid == 0:  # a download, killed once its file is there
            try:
                cached_download(url, timeout=60)
            finally:
                os._exit(0)
        deadline = time.monotonic() + 60
        while not leftovers(cache) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert len(leftovers(cache)) == 1  # what the killed download left
        path = cached_download(url)
    assert leftovers(cache) == ['repvgg-A0.pth'] and path == cached_path(url)
    assert torch.load(path)['meta'] == {'epoch': 3}


def test_same_file_name_at_two_urls_are_two_files(tmp_path):
    root = tmp_path / 'www'
    for version in ('v1', 'v2'):
        (root / version).mkdir(parents=True)
        torch.save({'version': version}, root / version / 'model.pth')
    with serve_directory(root) as (url, _):
        for version in ('v1', 'v2'):
            path = cached_download(f'{url}/{version}/model.pth')
            assert torch.load(path)['version'] == version


def test_hash_in_the_file_name_is_checked(served, cache):
    url, _, _, _ = served
    www = cache.parent.parent.parent / 'www'
    digest = hashlib.sha256((www / 'good.pth').read_bytes()).hexdigest()
    (www / f'good-{digest[:8]}.pth').write_bytes(
        (www / 'good.pth').read_bytes())
    wrong = 'abcdef12' if not digest.startswith('abcdef12') else 'abcdef13'
    (www / f'good-{wrong}.pth').write_bytes((www / 'good.pth').read_bytes())
    with pytest.raises(DownloadError, match=rf'has SHA-256 {digest[:8]}\.\.\.'
                       rf', not {wrong}\.\.\. as its name says.*not kept'):
        cached_download(f'{url}/good-{wrong}.pth')
    assert leftovers(cache) == []
    loaded = CheckpointLoader.load_checkpoint(f'{url}/good-{digest[:8]}.pth')
    assert loaded['meta'] == {'epoch': 3}
    # a date is no hash
    (www / 'good-20221213.pth').write_bytes((www / 'good.pth').read_bytes())
    assert osp.isfile(cached_download(f'{url}/good-20221213.pth'))


def test_readme_names_the_cache_path_of_b2():
    """The offline instructions give the path a download of B2 uses."""
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    assert cached_path(PRETRAINED_URLS['B2'],
                       '~/.cache/torch/hub/checkpoints') in readme
