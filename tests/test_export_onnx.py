"""ONNX export: the fused graph (only plain ops), onnxruntime equal to
PyTorch (same label maps on the mini set's val images), dynamic sizes,
fp16, the label-map output, the classifier, atomic writing, the CLI."""
import glob
import json
import os

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torch.nn as nn
from forked import run_tool
from helpers import REPO_ROOT, randomize_norms

from repvgg_seg.apis import init_segmentor
from repvgg_seg.datasets import generate_citymini, prepare_cityscapes
from repvgg_seg.deploy import onnx_export
from repvgg_seg.apis import export_onnx
from repvgg_seg.models.ops import MatMulAdaptiveAvgPool2d
from repvgg_seg.models import build_model
from repvgg_seg.utils.config import read_config as load_config
from repvgg_seg.deploy.onnx_export import (ExportError, ExportWrapper,
                                           check_fused_graph,
                                           export_to_bytes, make_exportable,
                                           normalize, op_types,
                                           preprocessing_of, read_images)

SEG_CONFIG = os.path.join(REPO_ROOT, 'tests', 'configs',
                          'pspnet_repvgg_tiny_citymini.py')
CLS_CONFIG = os.path.join(REPO_ROOT, 'configs', 'imagenet',
                          'repvgg_a0_tinyimagenet.py')
SHAPE = (80, 160)  # the tiny config's test size (scale 160x80)


def save_random(config, path):
    """A training-form checkpoint with non-trivial BN statistics, so that
    fusion has real work to do."""
    torch.save({'state_dict': randomize_norms(build_model(load_config(
        config))).state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return save_random(SEG_CONFIG, tmp_path_factory.mktemp('seg') / 's.pth')


@pytest.fixture(scope='module')
def val_images(tmp_path_factory):
    root = tmp_path_factory.mktemp('citymini')
    generate_citymini(root, num_train=1, num_val=4, height=128, width=256)
    prepare_cityscapes(root, nproc=1)
    return sorted(glob.glob(f'{root}/leftImg8bit/val/*/*.png'))


@pytest.fixture(scope='module')
def reference(checkpoint):
    """PyTorch logits at the input size, of the model as trained."""
    return ExportWrapper(init_segmentor(SEG_CONFIG, checkpoint))


def run_onnx(path, inputs):
    session = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    return session.run(None, {'image': inputs})[0]


def test_matmul_pooling_is_adaptive_average_pooling():
    x = torch.randn(2, 3, 13, 29)
    for bins in (1, 2, 3, 6, 7):
        expected = nn.AdaptiveAvgPool2d(bins)(x)
        for fixed in (None, (13, 29)):
            actual = MatMulAdaptiveAvgPool2d(bins, fixed)(x)
            assert torch.allclose(actual, expected, atol=1e-6)


def _graph(checkpoint, fuse):
    model = init_segmentor(SEG_CONFIG, checkpoint, fuse=fuse)
    example = torch.randn(1, 3, *SHAPE)
    wrapper = ExportWrapper(make_exportable(model, example))
    return onnx.load_from_string(export_to_bytes(wrapper, example, False,
                                                 17))


def test_op_types_and_fused_graph_check(checkpoint):
    fused = _graph(checkpoint, fuse=True)
    ops = op_types(fused)
    assert ops['Conv'] == 12 and ops['Relu'] == 11  # 5 blocks + the heads
    assert not {'BatchNormalization', 'Add'} & set(ops)
    check_fused_graph(fused)
    with pytest.raises(ExportError, match='not a fused network.*Add x'):
        check_fused_graph(_graph(checkpoint, fuse=False))


def test_exported_segmentor_equals_pytorch(checkpoint, val_images,
                                           reference, tmp_path):
    out = str(tmp_path / 'seg.onnx')
    report = export_onnx(SEG_CONFIG, checkpoint, out,
                         check_images=val_images[0])
    assert report['checks']['1 check images']['labels_agree'] == 1
    preprocessing = json.loads({
        p.key: p.value for p in onnx.load(out).metadata_props}[
            'preprocessing'])
    assert preprocessing == preprocessing_of(reference.model)
    for image in read_images(val_images, SHAPE):
        inputs = normalize([image], preprocessing)
        logits = run_onnx(out, inputs)
        with torch.no_grad():
            expected = reference(torch.from_numpy(inputs)).numpy()
        assert np.abs(logits - expected).max() < 1e-4 * np.abs(
            expected).max()
        assert (logits.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize('with_argmax', [False, True])
def test_dynamic_graph_runs_at_other_sizes(checkpoint, reference,
                                           with_argmax, tmp_path):
    out = str(tmp_path / 'dynamic.onnx')
    export_onnx(SEG_CONFIG, checkpoint, out, dynamic=True,
                with_argmax=with_argmax)
    for shape in ((2, 3, 64, 64), (1, 3, 97, 211), (1, 3, 16, 24)):
        inputs = torch.randn(shape)
        output = run_onnx(out, inputs.numpy())
        with torch.no_grad():
            expected = reference(inputs).numpy()
        if with_argmax:
            assert output.shape == shape[:1] + shape[2:]
            assert (output == expected.argmax(1)).mean() > 0.999
        else:
            assert output.shape == expected.shape
            assert np.abs(output - expected).max() < 1e-4 * np.abs(
                expected).max()


def test_fp16_graph_is_half_and_close_to_fp32(checkpoint, val_images,
                                              tmp_path):
    out = str(tmp_path / 'half.onnx')
    report = export_onnx(SEG_CONFIG, checkpoint, out, fp16=True,
                         check_images=val_images[0])
    graph = onnx.load(out).graph
    assert graph.input[0].type.tensor_type.elem_type == \
        onnx.TensorProto.FLOAT16
    check = report['checks']['1 check images']
    assert check['relative_diff'] < 1e-2 and check['labels_agree'] > 0.99


def test_classifier_graph_is_conv_relu_pool_fc(tmp_path):
    checkpoint = save_random(CLS_CONFIG, tmp_path / 'cls.pth')
    report = export_onnx(CLS_CONFIG, checkpoint, str(tmp_path / 'c.onnx'))
    assert set(report['ops']) == {'Conv', 'Relu', 'GlobalAveragePool',
                                  'Flatten', 'Gemm'}
    assert report['shape'] == (56, 56)  # the test pipeline's crop
    assert report['checks']['a random 56x56 input']['relative_diff'] < 1e-4


def test_nothing_is_written_unless_verified(checkpoint, tmp_path,
                                            monkeypatch):
    out = tmp_path / 'seg.onnx'
    out.write_bytes(b'previous')
    monkeypatch.setitem(onnx_export.TOLERANCE, 'fp32', 0.0)
    with pytest.raises(ExportError, match='differs from PyTorch.*nothing '
                       'was written'):
        export_onnx(SEG_CONFIG, checkpoint, str(out))
    assert out.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['seg.onnx']


def test_export_tool(checkpoint, val_images, tmp_path):
    out = tmp_path / 'tool.onnx'
    result = run_tool(os.path.join(REPO_ROOT, 'tools', 'export_onnx.py'),
                      SEG_CONFIG, checkpoint, out, '--shape', 64, 128,
                      '--check-images', val_images[0])
    assert result.returncode == 0, result.stderr
    assert 'labels agree on 100.000%' in result.stdout
    assert 'on the path from the image: Conv x12, Relu x11, MatMul x8, ' \
        'Resize x5, Concat x1' in result.stdout and out.exists()
    refused = run_tool(os.path.join(REPO_ROOT, 'tools', 'export_onnx.py'),
                       SEG_CONFIG, checkpoint, tmp_path / 'x.onnx',
                       '--check-images', tmp_path / 'none*.png')
    assert refused.returncode == 2 and 'Traceback' not in refused.stderr
    assert refused.stderr.strip().endswith('matches no file')
