"""Pretrained weights by URL: the configs name mmpretrain's ImageNet files,
downloads are cached the MMSeg way (torch hub's checkpoints folder), a
failed download stops tools/train.py with one line, and every checkpoint
source mmengine knows (URLs, model-zoo names, storage backends) goes through
the weights-only loader: a malicious file served from 127.0.0.1 never runs."""
import glob
import json
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from helpers import REPO_ROOT, RunsShellCommand, build, serve_directory
from repvgg_seg.apis import check_checkpoint
from repvgg_seg.compat import (CheckpointError, DownloadError,
                               checkpoint_cache_dir)
from repvgg_seg.compat import checkpoint_sources
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
    assert (cache / 'good.pth').is_file()
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
    assert not (cache / 'evil.pth').exists()  # refused files leave the cache
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
    assert url in message and str(cache / 'repvgg-A0.pth') in message
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
    assert f'put it at {cache / "repvgg-A0.pth"}' in lines[-1]
    assert 'Traceback' not in result.stderr and 'Config:' not in result.stdout
    assert not work_dir.exists()  # the Runner never started
