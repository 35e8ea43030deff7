"""Deployment: exact fusion, fused checkpoints that every loader takes, the
same mIoU before and after, refusals of tools/fuse.py, the inference API."""
import contextlib
import copy
import hashlib
import io
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, load_tool, randomize_norms, relative_error
from mmcv.cnn import ConvModule
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.apis import inference_model, init_model
from mmseg.datasets import CityscapesDataset
from repvgg_seg.apis import inference_segmentor, init_segmentor
from repvgg_seg.datasets import generate_citymini, prepare_cityscapes
from repvgg_seg.deploy import (SegPredictor,
                               deploy_config, fuse_checkpoint, fuse_model)
from repvgg_seg.models import build_model
from repvgg_seg.models.checkpoints import CheckpointMismatch
from repvgg_seg.utils.cli import USER_ERROR_EXIT, run_cli
from repvgg_seg.utils.files import atomic_output

CONFIG = osp.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a0_citymini.py')
CLASSIFIER_CONFIG = osp.join(REPO_ROOT, 'configs', 'imagenet',
                             'repvgg_a0_tinyimagenet.py')
#: Fused outputs equal the original ones up to fp32 rounding.
TOLERANCE = 1e-4
TRAIN_ITERS = 2


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, *args], capture_output=True,
                           text=True, cwd=REPO_ROOT, env=env)


def fuse_main(*args):
    """tools/fuse.py in this process, as its command line runs it; returns
    what it printed, or raises SystemExit with the exit code."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            run_cli(load_tool('fuse').main, [str(a) for a in args])
    except SystemExit as exc:
        if exc.code:
            raise
    return out.getvalue()


def digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def no_norm_left(model):
    return not any(isinstance(m, _BatchNorm) or isinstance(m, ConvModule)
                   and m.with_norm for m in model.modules())


@pytest.fixture(scope='session')
def citymini(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('citymini'))
    generate_citymini(root, num_train=2, num_val=2, height=128, width=256)
    prepare_cityscapes(root, nproc=1)
    return root


@pytest.fixture(scope='session')
def trained(citymini, tmp_path_factory):
    """A checkpoint written by tools/train.py (meta, message hub, optimizer)
    after a few iterations, so the BN statistics are not the defaults."""
    work_dir = tmp_path_factory.mktemp('train')
    roots = [f'{split}_dataloader.dataset.data_root={citymini}'
             for split in ('train', 'val', 'test')]
    result = run_tool(
        'tools/train.py', CONFIG, '--work-dir', str(work_dir),
        '--cfg-options', f'train_cfg.max_iters={TRAIN_ITERS}',
        'train_dataloader.batch_size=2',
        f'default_hooks.checkpoint.interval={TRAIN_ITERS}', *roots)
    assert result.returncode == 0, result.stderr[-3000:]
    return str(work_dir / f'iter_{TRAIN_ITERS}.pth')


@pytest.fixture(scope='session')
def fused(trained, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('fused')
    printed = fuse_main(CONFIG, trained, out_dir / 'fused.pth')
    return str(out_dir / 'fused.pth'), str(out_dir / 'fused.py'), printed


@pytest.fixture(scope='module')
def random_model():
    return init_segmentor(CONFIG)


@pytest.fixture(scope='module')
def val_image(citymini):
    folder = osp.join(citymini, 'leftImg8bit', 'val')
    city = sorted(os.listdir(folder))[0]
    return osp.join(folder, city, sorted(os.listdir(osp.join(folder,
                                                             city)))[0])


def test_fuse_model_is_exact_and_rebuilt_by_deploy_config():
    cfg = Config.fromfile(CONFIG)
    model = randomize_norms(build_model(cfg))
    original = copy.deepcopy(model)
    fuse_model(model)
    assert no_norm_left(model)
    x = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        assert relative_error(model(x, mode='tensor'),
                              original(x, mode='tensor')) < TOLERANCE
    deploy_cfg = deploy_config(cfg)
    assert deploy_cfg.model.backbone.deploy
    assert deploy_cfg.model.decode_head.norm_cfg is None
    rebuilt = build_model(deploy_cfg)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    rebuilt.load_state_dict(model.state_dict())  # strict: same shapes


def test_fuse_checkpoint_fuses_a_classifier(tmp_path):
    model = randomize_norms(build_model(Config.fromfile(CLASSIFIER_CONFIG)))
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'cls.pth')
    report = fuse_checkpoint(CLASSIFIER_CONFIG, str(tmp_path / 'cls.pth'),
                             str(tmp_path / 'cls_fused.pth'))
    assert report['relative_diff'] < TOLERANCE
    assert report['fused_params'] < report['params']
    fused = build_model(Config.fromfile(report['out_config']))
    fused.load_state_dict(torch.load(report['out_checkpoint'])['state_dict'])
    assert no_norm_left(fused)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(fused(x), model.eval()(x)) < TOLERANCE


def test_fuse_tool_writes_fused_checkpoint_and_deploy_config(trained, fused):
    out, out_config, printed = fused
    assert sorted(os.listdir(osp.dirname(out))) == ['fused.pth', 'fused.py']
    relative = float(re.search(r'relative ([-+.e\d]+)', printed).group(1))
    assert relative < TOLERANCE
    checkpoint = torch.load(out, weights_only=True)
    meta = checkpoint['meta']
    assert meta['fused'] and meta['arch'] == 'A0'
    assert meta['source_checkpoint'] == osp.abspath(trained)
    assert tuple(meta['dataset_meta']['classes']) == \
        CityscapesDataset.METAINFO['classes']
    assert len(meta['dataset_meta']['palette']) == 19
    assert not [k for k in checkpoint['state_dict']
                if '.bn.' in k or 'branch_3x3' in k or 'running_mean' in k]
    assert Config.fromfile(out_config).model.backbone.deploy


def test_every_loader_gives_the_training_predictions(trained, fused,
                                                     val_image):
    out, out_config, _ = fused
    expected = inference_segmentor(init_segmentor(CONFIG, trained), val_image)
    models = [init_segmentor(out_config, out),
              init_segmentor(CONFIG, out),  # deploy structure derived
              init_segmentor(CONFIG, trained, fuse=True)]
    for model in models:
        assert no_norm_left(model)
        result = inference_segmentor(model, val_image)
        assert relative_error(result.seg_logits.data,
                              expected.seg_logits.data) < TOLERANCE
        agree = (result.pred_sem_seg.data == expected.pred_sem_seg.data)
        assert agree.float().mean() > 0.999  # only exact ties may flip


def test_mmseg_init_model_loads_fused_checkpoint(fused, val_image):
    out, out_config, _ = fused
    model = init_model(out_config, out, device='cpu')
    saved = torch.load(out, weights_only=True)['state_dict']
    state = model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    assert tuple(model.dataset_meta['classes']) == \
        CityscapesDataset.METAINFO['classes']
    ours = inference_segmentor(init_segmentor(out_config, out), val_image)
    assert torch.equal(inference_model(model, val_image).pred_sem_seg.data,
                       ours.pred_sem_seg.data)


def test_tools_test_gives_the_same_miou_after_fusion(trained, fused,
                                                     citymini, tmp_path):
    out, out_config, _ = fused
    mious = []
    for config, checkpoint in ((CONFIG, trained), (out_config, out)):
        result = run_tool(
            'tools/test.py', config, checkpoint, '--work-dir', str(tmp_path),
            '--cfg-options', f'test_dataloader.dataset.data_root={citymini}')
        assert result.returncode == 0, result.stderr[-3000:]
        mious.append(float(re.findall(r'mIoU: ([\d.]+)', result.stdout)[-1]))
    assert abs(mious[0] - mious[1]) <= 0.01


def _structure_config(tmp_path):
    """Weights fit, network differs: output stride 8 instead of 16."""
    path = tmp_path / 'os8.py'
    path.write_text(f'_base_ = [{CONFIG!r}]\nmodel = dict(backbone=dict('
                    'strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4)))\n')
    return path


@pytest.mark.parametrize('case, expected', [
    ('arch', 'holds RepVGG-A0, the config builds RepVGG-A1'),
    ('structure', 'model.backbone.dilations: checkpoint'),
    ('fused', 'is already fused'),
    ('overwrite_checkpoint', 'would overwrite the input checkpoint'),
    ('overwrite_config', 'would overwrite the input config'),
])
def test_fuse_tool_refuses_with_one_line(case, expected, trained, fused,
                                         tmp_path, capsys):
    out = tmp_path / 'out.pth'
    args = {
        'arch': [osp.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a1.py'),
                 trained, out],
        'structure': [_structure_config(tmp_path), trained, out],
        'fused': [fused[1], fused[0], out],
        'overwrite_checkpoint': [CONFIG, trained, trained],
        'overwrite_config': [CONFIG, trained, out, '--out-config', CONFIG],
    }[case]
    inputs = {p: digest(p) for p in (CONFIG, trained, fused[0])}
    with pytest.raises(SystemExit) as exc:
        fuse_main(*args)
    assert exc.value.code == USER_ERROR_EXIT
    message = capsys.readouterr().err.rstrip('\n')
    assert message.startswith('error: ') and '\n' not in message
    assert expected in message
    assert not out.exists() and not out.with_suffix('.py').exists()
    assert {p: digest(p) for p in inputs} == inputs


def test_fuse_cli_refusal_prints_no_traceback(fused, tmp_path):
    out, out_config, _ = fused
    result = run_tool('tools/fuse.py', out_config, out,
                      str(tmp_path / 'again.pth'))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f'error: {out} is already fused: load it with its deploy config '
        '(no need to fuse again)']
    assert not os.listdir(tmp_path)


def test_init_segmentor_refuses_a_mismatched_checkpoint(trained):
    with pytest.raises(CheckpointMismatch, match='another model config'):
        init_segmentor(osp.join(REPO_ROOT, 'configs', 'pspnet_repvgg_a0.py'),
                       trained)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / 'model.pth'
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.endswith('.pth') and osp.dirname(tmp) == str(tmp_path)
            open(tmp, 'w').write('half')
            raise RuntimeError('killed')
    assert not os.listdir(tmp_path)
    with atomic_output(target) as tmp:
        open(tmp, 'w').write('whole')
    assert os.listdir(tmp_path) == ['model.pth']
    assert target.read_text() == 'whole'


def test_inference_takes_paths_grey_alpha_and_any_size(random_model,
                                                        tmp_path):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    path = str(tmp_path / 'image.png')
    cv2.imwrite(path, bgr)
    expected = inference_segmentor(random_model, bgr).pred_sem_seg.data
    assert expected.shape == (1, 40, 70)
    for image in (path, np.dstack([bgr, np.full((40, 70), 255, np.uint8)])):
        result = inference_segmentor(random_model, image)
        assert torch.equal(result.pred_sem_seg.data, expected)
    grey = bgr[..., 0]
    expected_grey = inference_segmentor(random_model,
                                        np.repeat(grey[..., None], 3, 2))
    for image in (grey, grey[..., None]):
        assert torch.equal(
            inference_segmentor(random_model, image).pred_sem_seg.data,
            expected_grey.pred_sem_seg.data)
    images = [bgr, bgr.astype(np.float32), rng.integers(0, 256, (90, 31, 3),
                                                        dtype=np.uint8)]
    results = inference_segmentor(random_model, images, batch_size=2)
    assert [r.pred_sem_seg.shape for r in results] == [(40, 70), (40, 70),
                                                       (90, 31)]
    assert results[1].seg_logits.data.shape == (19, 40, 70)


@pytest.mark.parametrize('image', [
    np.zeros((0, 10, 3), np.uint8),
    np.zeros((10, 10, 2), np.uint8),
    np.zeros((2, 10, 10, 3), np.uint8),
    np.zeros((10, 10, 3), bool),
    np.full((10, 10, 3), 'x', object),
    [[1, 2], [3, 4]],
], ids=['empty', '2-channels', '4-d', 'bool', 'object', 'list'])
def test_inference_refuses_what_is_not_an_image(random_model, image):
    with pytest.raises(ValueError, match='expected'):
        inference_segmentor(random_model, image if not isinstance(
            image, list) else [image])


def test_inference_refuses_undecodable_file(random_model, tmp_path):
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='cannot decode'):
        inference_segmentor(random_model, str(tmp_path / 'broken.png'))


def test_predictor_batches_give_single_image_results(random_model):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
              for _ in range(5)]
    single, single_logits = SegPredictor(random_model).predict(
        frames, with_logits=True)
    batched, logits = SegPredictor(random_model, batch_size=3).predict(
        frames, with_logits=True)
    for labels, expected, logit, expected_logit in zip(
            batched, single, logits, single_logits):
        assert labels.dtype == np.uint8 and labels.shape == (48, 96)
        assert logit.shape == (19, 48, 96)
        assert np.array_equal(labels, logit.argmax(0))
        assert relative_error(torch.from_numpy(logit),
                              torch.from_numpy(expected_logit)) < TOLERANCE
        assert (labels == expected).mean() > 0.999


def test_predictor_refuses_fp16_off_gpu(random_model):
    with pytest.raises(ValueError, match='CUDA'):
        SegPredictor(random_model, fp16=True)


def test_fast_path_serves_images_the_pipeline_keeps(random_model, val_image):
    image = cv2.resize(cv2.imread(val_image), (320, 160))  # the test scale
    fast = SegPredictor(random_model, fast=True)
    exact = SegPredictor(random_model, fast=False)
    calls = []
    fast_segmenter = fast.fast
    fast.fast = lambda frames: calls.append(frames.shape) or fast_segmenter(
        frames)
    labels = fast.predict([image])[0]
    assert calls == [(1, 160, 320, 3)]
    assert labels.shape == (160, 320) and labels.dtype == np.uint8
    assert (labels == exact.predict([image])[0]).mean() > 0.999
    bigger = cv2.resize(image, (640, 320))  # resized by the pipeline
    assert np.array_equal(fast.predict([bigger])[0],
                          exact.predict([bigger])[0])
    assert len(calls) == 1
