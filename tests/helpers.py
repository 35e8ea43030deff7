"""Helpers shared by the RepVGG tests."""
import contextlib
import http.server
import importlib.util
import json
import os
import os.path as osp
import pathlib
import subprocess
import sys
import threading

import torch
from torch.nn.modules.batchnorm import _BatchNorm

import repvgg_seg  # noqa: F401  (registers RepVGG; mmseg on mmcv-lite)
from mmseg.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The quick-start config shrunk for tests (a run takes seconds).
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs',
                       'pspnet_repvgg_tiny_citymini.py')

# The tests run small tensors, for which a second thread only adds OpenMP
# synchronisation, which stalls badly on busy 2-core CI runners.
torch.set_num_threads(1)

#: Fusion must be exact up to fp32 rounding.
FUSION_TOLERANCE = 1e-5


def build(**kwargs):
    return MODELS.build(dict(type='RepVGG', **kwargs))


@torch.no_grad()
def randomize_norms(model, seed=0):
    """Give every BN non-trivial statistics and affine parameters: with the
    defaults (mean 0, var 1, weight 1, bias 0) a fusion that mishandles any
    of them would still look exact."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            size = m.num_features
            m.running_mean.copy_(torch.randn(size, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(size, generator=gen) + 0.5)
            m.weight.copy_(torch.rand(size, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(size, generator=gen) * 0.5)
    return model


def images(num, size, dtype=torch.float32):
    """The same random batch on every run, so tolerances are reproducible."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(num, 3, size, size, generator=gen).to(dtype)


@torch.no_grad()
def features(model, x):
    return model.eval()(x)


def relative_error(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def assert_features_close(actual, expected, tolerance=FUSION_TOLERANCE):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert relative_error(a, e) < tolerance


def assert_fuses_exactly(model, x):
    """Eval-mode outputs before and after :meth:`switch_to_deploy` agree."""
    expected = features(model, x)
    model.switch_to_deploy()
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert_features_close(features(model, x), expected)


def load_tool(name):
    """A script of ``tools/`` as a module, to call its ``main(argv)``."""
    spec = importlib.util.spec_from_file_location(
        f'tools_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_video(path):
    """All frames (uint8 BGR) and the fps of a video file."""
    import cv2
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            capture.release()
            return frames, fps
        frames.append(frame)


class RunsShellCommand:
    """What a malicious checkpoint holds: unpickling it runs a command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


@contextlib.contextmanager
def serve_directory(root):
    """An HTTP server for the files of ``root`` on 127.0.0.1 (a free port),
    in a thread; yields ``(base_url, requested_paths)``."""
    requested = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def citymini_root(tmp_path_factory, num_train, num_val, height=64,
                  width=128, prepare=True):
    """A generated Cityscapes-layout data set in a fresh temporary folder,
    label ids converted to train ids unless ``prepare`` is False."""
    from repvgg_seg.datasets import generate_citymini, prepare_cityscapes
    root = tmp_path_factory.mktemp('data') / 'citymini'
    generate_citymini(root, num_train=num_train, num_val=num_val,
                      height=height, width=width)
    if prepare:
        prepare_cityscapes(root, nproc=1)
    return root


def tiny_segmentor(with_cp=False):
    """The tiny test config and its segmentor (seeded, BN, train mode),
    without dropout: it draws its mask in memory order, which differs
    between layouts."""
    from mmengine.config import Config
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.decode_head.dropout_ratio = 0
    cfg.model.auxiliary_head.dropout_ratio = 0
    cfg.model.backbone.with_cp = with_cp
    return cfg, build_segmentor(cfg)


def build_segmentor(cfg):
    """``cfg.model`` built seeded, SyncBN as BN, initialised, in train
    mode."""
    from mmengine.model import revert_sync_batchnorm
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return model.train()


def step_with_grads(model, batch):
    """One forward/backward of a segmentor on a copy of ``batch``: the
    preprocessed inputs, the loss dict, the summed loss and the gradients
    by parameter name."""
    import copy
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.grad is not None}
    return data['inputs'], losses, loss.detach(), grads


def run_logs(work_dir):
    """The log files of the runs in ``work_dir`` (tools/train.py and
    tools/test.py keep the console short; the logs have everything)."""
    import glob
    return ''.join(open(path).read() for path in sorted(
        glob.glob(osp.join(glob.escape(str(work_dir)), '*', '*.log'))))


def torchrun_train(config, work_dir, *args, nproc=2):
    """``tools/train.py CONFIG --launcher pytorch --work-dir DIR ARGS``
    under torchrun on the CPU; the finished process."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(
        # --standalone: a free port, so parallel runs cannot collide
        [sys.executable, '-m', 'torch.distributed.run',
         f'--nproc_per_node={nproc}', '--standalone',
         osp.join(REPO_ROOT, 'tools', 'train.py'), str(config),
         '--launcher', 'pytorch', '--work-dir', str(work_dir), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)


def run_tool(name, config, *args, env=None):
    """``tools/NAME CONFIG ARGS`` in a subprocess (``env``: extra
    environment variables); the finished process."""
    return subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', name), str(config),
         *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=600, env=env and {**os.environ, **env})


def data_root_options(root, *extra):
    """``--cfg-options`` with ``extra`` and every split's data root."""
    return ['--cfg-options', *extra, *(
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test'))]


def train(config, work_dir, root, *options, iters=6, args=(), env=None):
    """``tools/train.py`` for ``iters`` iterations on the data at ``root``,
    which must succeed; its output and its log files (the console is kept
    short)."""
    result = run_tool('train.py', config, '--work-dir', work_dir, *args,
                      *data_root_options(root, f'train_cfg.max_iters={iters}',
                                         *options), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr + run_logs(work_dir)


def train_losses(config, work_dir, root, *options, iters=4):
    """The log and the per-iteration losses of ``iters`` seeded
    ``tools/train.py`` iterations, on the CPU also where there is a GPU
    (the runs compared are fp32 without TF32 there)."""
    log = train(config, work_dir, root, 'randomness.seed=0', *options,
                iters=iters, env={'CUDA_VISIBLE_DEVICES': ''})
    scalars = next(pathlib.Path(work_dir).glob('*/vis_data/scalars.json'))
    entries = [json.loads(line) for line in scalars.read_text().splitlines()]
    return log, [e['loss'] for e in entries if 'loss' in e]


def config_with_hook(directory, config, name='with_hook.py'):
    """A config file in ``directory``: ``config`` with ChannelsLastHook
    forced on (on the CPU, in fp32)."""
    path = pathlib.Path(directory) / name
    path.write_text(
        f"_base_ = ['{config}']\n"
        "custom_hooks = [dict(type='CheckDatasetHook', nproc=1),\n"
        "                dict(type='ChannelsLastHook', amp_only=False,\n"
        "                     on_cpu=True)]\n")
    return path


def tool(name):
    """The path of ``tools/NAME.py``."""
    return osp.join(REPO_ROOT, 'tools', f'{name}.py')


def random_tiny_checkpoint(directory):
    """A checkpoint of :data:`TINY_CONFIG`'s model with seeded random
    weights, saved in ``directory``; its path."""
    from repvgg_seg.models import build_model
    from repvgg_seg.utils.config import read_config
    path = osp.join(directory, 'tiny.pth')
    torch.manual_seed(0)
    model = build_model(read_config(TINY_CONFIG))
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def one_error_line(result):
    """The one ``error: ...`` line of a tool that refused its input (exit
    2, no traceback)."""
    assert result.returncode == 2, result
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1, result.stderr
    return errors[0]


def data_options(root, *splits):
    """``--cfg-options`` pointing the data sets of ``splits`` at ``root``."""
    return ['--cfg-options', *(f'{split}_dataloader.dataset.data_root={root}'
                               for split in splits)]
