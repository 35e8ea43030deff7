"""mmseg on mmcv-lite, real ops on full mmcv, and safe checkpoint loading."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from helpers import REPO_ROOT
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from repvgg_seg.compat import (CheckpointError, CompiledOpUnavailable,
                               compiled_ops_available, install_lite_ops_shim)

needs_lite = pytest.mark.skipif(compiled_ops_available(),
                                reason='full mmcv: no shim to test')
needs_full = pytest.mark.skipif(not compiled_ops_available(),
                                reason='mmcv-lite: no compiled ops')


def test_mmseg_models_import_after_repvgg_seg():
    """In a fresh interpreter, as a training script would import them."""
    script = ('import json, repvgg_seg, mmseg.models, mmcv.ops; '
              'print(json.dumps(dict(shim=getattr(mmcv.ops, '
              '"__repvgg_seg_shim__", False), '
              'compiled=repvgg_seg.compat.compiled_ops_available())))')
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report['shim'] is not report['compiled']  # shim exactly on lite


@needs_lite
def test_compiled_op_placeholder_raises_a_helpful_error():
    import mmcv.ops
    assert install_lite_ops_shim()  # already installed: reports it
    assert not isinstance(nn.Conv2d(1, 1, 1), mmcv.ops.DeformConv2d)
    with pytest.raises(CompiledOpUnavailable,
                       match='DeformConv2d is a compiled op.*mmcv-lite.*'
                       'pip install'):
        mmcv.ops.DeformConv2d(4, 4, 3)


MMSEG_OPS_IMPORTS = [  # every "from mmcv.ops import" of mmseg 1.2.2
    'CrissCrossAttention', 'DeformConv2d', 'ModulatedDeformConv2d', 'PSAMask',
    'point_sample', 'sigmoid_focal_loss']


@needs_lite
def test_stand_in_has_only_the_names_mmseg_imports():
    """As with real mmcv, any other name is an ImportError (no longer a
    placeholder); mmseg's own imports keep working."""
    script = ('import repvgg_seg, mmseg.models, mmseg.engine\n'
              f'from mmcv.ops import {", ".join(MMSEG_OPS_IMPORTS)}\n'
              'import mmcv.ops\n'
              'for name in ("AnyNameAtAll", "nms", "roi_align"):\n'
              '    try:\n'
              '        exec(f"from mmcv.ops import {name}")\n'
              '    except ImportError as exc:\n'
              '        print(type(exc).__name__, exc)\n'
              'print(hasattr(mmcv.ops, "nms"))\n')
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[-4:]
    assert lines[0].startswith("ImportError cannot import name "
                               "'AnyNameAtAll' from 'mmcv.ops'"), lines
    # names of compiled-op files: their file needs mmcv._ext, as on lite
    assert lines[1:3] == ["ModuleNotFoundError No module named 'mmcv._ext'"
                          ] * 2, lines
    assert lines[-1] == 'False'


def test_pure_pytorch_ops_work_on_any_mmcv():
    from mmcv.ops import point_sample
    out = point_sample(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 2))
    assert out.shape == (1, 2, 3)


@needs_full
def test_full_mmcv_uses_its_real_ops():
    import mmcv.ops
    assert not install_lite_ops_shim()
    assert not getattr(mmcv.ops, '__repvgg_seg_shim__', False)
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [20., 20., 30., 30.]])
    _, keep = mmcv.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


# ---- checkpoints ----------------------------------------------------------
class TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=out.square().mean()) if mode == 'loss' else out


def tiny_runner(work_dir, max_iters, name, **kwargs):
    data = [dict(inputs=torch.randn(2)) for _ in range(8)]
    return Runner(
        model=TinyModel(), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(dataset=data, batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                           by_epoch=False)),
        # The Runner makes its scope the current one for the whole process;
        # 'mmseg' (as in this project's configs) keeps RepVGG buildable after.
        default_scope='mmseg', log_level='WARNING', **kwargs)


def test_runner_checkpoint_loads_and_resumes_weights_only(tmp_path):
    first = tiny_runner(tmp_path / 'first', 2, 'write_checkpoint')
    first.train()
    path = str(tmp_path / 'first' / 'iter_2.pth')

    checkpoint = _load_checkpoint(path)
    assert checkpoint['meta']['iter'] == 2
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)  # what plain weights_only refuses

    resumed = tiny_runner(tmp_path / 'resumed', 3, 'resume_checkpoint',
                          load_from=path, resume=True)
    resumed.train()
    # Only iteration 3 ran: the first two came from the checkpoint.
    written = [f for f in os.listdir(tmp_path / 'resumed')
               if f.endswith('.pth')]
    assert written == ['iter_3.pth']
    losses = resumed.message_hub.get_scalar('train/loss').data[0]
    first_losses = first.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 3 and (losses[:2] == first_losses).all()


class RunsShellCommand:
    """What a malicious checkpoint holds: unpickling it runs a command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


class ReachesIntoHistoryBuffer:
    """Abuses the allow-listed ``getattr`` to walk to arbitrary attributes,
    the first step of a gadget chain."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def save_plain_pickle(obj, path):
    with open(path, 'wb') as f:
        pickle.dump(obj, f)


def load_plain_pickle(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


#: file format -> (save, load without any safety)
FORMATS = {
    'torch-zip': (torch.save, lambda path: torch.load(path,
                                                      weights_only=False)),
    'plain-pickle': (save_plain_pickle, load_plain_pickle),
}


# the plain pickle is written with pickle's protocol on purpose (an
# attacker's file); torch's weights-only reader notes it is not its own
@pytest.mark.filterwarnings('ignore:Detected pickle protocol:UserWarning')
@pytest.mark.parametrize('file_format', list(FORMATS))
def test_malicious_checkpoint_is_refused_and_nothing_runs(
        file_format, tmp_path):
    save, unsafe_load = FORMATS[file_format]
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    save({'state_dict': {}, 'payload': RunsShellCommand(f'touch {marker}')},
         path)
    with pytest.raises(CheckpointError,
                       match='refusing to load.*nothing was executed'):
        _load_checkpoint(path)
    assert not marker.exists()
    unsafe_load(path)  # proves the file really runs the command
    assert marker.exists()


def test_getattr_gadget_is_refused(tmp_path):
    path = str(tmp_path / 'gadget.pth')
    torch.save({'meta': ReachesIntoHistoryBuffer()}, path)
    with pytest.raises(CheckpointError, match='refusing to load'):
        _load_checkpoint(path)


@pytest.mark.parametrize('keep', [0.5, 0.0])
def test_truncated_checkpoint_gives_a_clear_error(keep, tmp_path):
    path = tmp_path / 'truncated.pth'
    torch.save({'weight': torch.randn(256, 256)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match='truncated'):
        _load_checkpoint(str(path))
