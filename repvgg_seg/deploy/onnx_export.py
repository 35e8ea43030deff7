"""Export a fused segmentor or classifier to ONNX, for onnxruntime and
TensorRT, and prove the file computes what the PyTorch model computes.

The graph takes the *normalised* image, ``N x 3 x H x W`` float32 (float16
with ``fp16``): channels in the order the model's data preprocessor gives
(RGB for our configs), ``(pixel - mean) / std``. Normalisation stays
outside so the graph is the plain RepVGG network (3x3 convs and ReLUs) that
inference engines fuse best; mean, std and the channel order are stored in
the model's ``metadata_props`` so a deployment can read them. Outputs:
logits at the input resolution (``N x C x H x W``; classifier ``N x C``), or
with ``with_argmax`` the label map (``N x H x W``; classifier ``N``, int64).

Nothing is written unless the graph passes ``onnx.checker``, holds only
the ops of a fused network (:func:`check_fused_graph`) and, run by
onnxruntime, matches the PyTorch model; the file is then written
atomically.
"""
import collections
import copy
import glob
import io
import json
import os.path as osp
import warnings

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.checkpoints import backbone_arch
from ..utils.config import test_pipeline_of
from ..utils.files import atomic_write
from ..utils.images import check_image_file
from .fuse import DeployError, fuse_model
from ..models.ops import MatMulAdaptiveAvgPool2d

DEFAULT_OPSET = 17
#: Largest logit difference to onnxruntime, relative to the largest logit:
#: fusion and export change only the fp32 rounding. fp16 rounds every
#: activation, so its bound is loose (label agreement is reported too).
TOLERANCE = {'fp32': 1e-4, 'fp16': 1e-2}
#: Ops allowed on the path from the image to the output (see
#: :func:`data_path_nodes`): the fused backbone (3x3/1x1 Conv, Relu, the
#: squeeze-excitation of D2se: GlobalAveragePool, Sigmoid, Mul), the heads
#: (pooling pyramid as MatMul with averaging matrices, Resize, Concat;
#: classifier Flatten + Gemm) and the final ArgMax. No Add and no
#: BatchNormalization: a training-form RepVGG block adds its branches and
#: normalises its identity branch.
FUSED_GRAPH_OPS = frozenset({
    'Conv', 'Relu', 'MaxPool', 'AveragePool', 'GlobalAveragePool',
    'Sigmoid', 'Mul', 'MatMul', 'Resize', 'Concat', 'Flatten', 'Gemm',
    'ArgMax', 'Identity'
})
CONV_KERNELS = ((3, 3), (1, 1))
#: Images of the label-map comparison when none are given: the config's
#: validation images, at most this many.
MAX_CHECK_IMAGES = 8


class ExportError(DeployError):
    """An export that cannot be done or did not reproduce the model."""


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ExportError('ONNX export needs onnx and onnxruntime: pip '
                          'install -e ".[export]"') from None
    return onnx, onnxruntime


@torch.no_grad()
def make_exportable(model, example=None):
    """Replace, in place, the modules ONNX cannot express. With an
    ``example`` input the graph will have its size: the pooling matrices
    are then computed here, for the sizes the example meets."""
    pools = {name: m for name, m in model.named_modules()
             if isinstance(m, nn.AdaptiveAvgPool2d)}
    input_sizes = {}

    def record_size(pool, args):
        input_sizes[pool] = tuple(args[0].shape[-2:])

    if example is not None and pools:
        hooks = [pool.register_forward_pre_hook(record_size)
                 for pool in pools.values()]
        model(example, mode='tensor')
        for hook in hooks:
            hook.remove()
    for name, pool in pools.items():
        parent, _, attr = name.rpartition('.')
        setattr(model.get_submodule(parent), attr, MatMulAdaptiveAvgPool2d(
            pool.output_size, input_sizes.get(pool)))
    return model


def is_segmentor(model):
    return hasattr(model, 'decode_head')


class ExportWrapper(nn.Module):
    """Normalised image -> logits at the input size (segmentor, as MMSeg's
    postprocessing resizes them) or class logits; with ``with_argmax`` the
    labels."""

    def __init__(self, model, with_argmax=False):
        super().__init__()
        self.model, self.with_argmax = model, with_argmax

    def forward(self, image):
        logits = self.model(image, mode='tensor')
        if is_segmentor(self.model):
            logits = F.interpolate(
                logits, size=image.shape[2:], mode='bilinear',
                align_corners=self.model.decode_head.align_corners)
        return logits.argmax(dim=1) if self.with_argmax else logits


def preprocessing_of(model):
    """What a deployment must do to a BGR uint8 image before the graph."""
    pre = model.data_preprocessor
    to_rgb = getattr(pre, 'channel_conversion',
                     getattr(pre, '_channel_conversion', False))
    normalized = getattr(pre, '_enable_normalize', False)
    return dict(
        layout='NCHW', channels='RGB' if to_rgb else 'BGR',
        mean=[round(v, 4) for v in pre.mean.flatten().tolist()]
        if normalized else [0.] * 3,
        std=[round(v, 4) for v in pre.std.flatten().tolist()]
        if normalized else [1.] * 3)


def normalize(images_bgr, preprocessing):
    """BGR uint8 ``H x W x 3`` images -> the graph's float32 NCHW input."""
    batch = np.stack(images_bgr).astype(np.float32)
    if preprocessing['channels'] == 'RGB':
        batch = batch[..., ::-1]
    batch = (batch - preprocessing['mean']) / preprocessing['std']
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), np.float32)


def default_shape(cfg):
    """``(H, W)`` the model runs at: the test pipeline's crop (classifier)
    or its ``Resize`` scale (segmentor; MMSeg writes scales as (W, H))."""
    pipeline = test_pipeline_of(cfg)
    for step in pipeline:
        if step['type'] == 'CenterCrop':
            size = step['crop_size']
            return (size, size) if isinstance(size, int) else size[::-1]
    for step in pipeline:
        if step['type'] == 'Resize' and 'scale' in step:
            width, height = step['scale']
            return height, width
    raise ExportError('cannot tell the input size from the test pipeline: '
                      'pass --shape H W')


def export_to_bytes(wrapper, example, dynamic, opset):
    """The serialised ONNX model of ``wrapper`` traced on ``example``."""
    names = ['labels' if wrapper.with_argmax else 'logits']
    axes = None
    if dynamic:
        image_axes = {0: 'batch', 2: 'height', 3: 'width'}
        output_axes = {0: 'batch'}
        if is_segmentor(wrapper.model):
            output_axes.update(
                {1: 'height', 2: 'width'} if wrapper.with_argmax else
                {2: 'height', 3: 'width'})
        axes = {'image': image_axes, names[0]: output_axes}
    buffer = io.BytesIO()
    wrapper.eval()  # the exporter restores the mode it finds
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer and deprecation notes
        # The TorchScript exporter: the dynamo one needs onnxscript.
        torch.onnx.export(wrapper, (example, ), buffer, dynamo=False,
                          input_names=['image'], output_names=names,
                          opset_version=opset, dynamic_axes=axes,
                          do_constant_folding=True)
    return buffer.getvalue()


def op_types(onnx_model):
    """How often each op type occurs in the graph."""
    return collections.Counter(node.op_type for node in onnx_model.graph.node)


def data_path_nodes(onnx_model):
    """The nodes whose inputs depend on the image's values, in graph order.

    ``Shape`` reads only the image's size, so the size arithmetic after it
    (of Resize and of the dynamic pooling matrices) is not on this path.
    """
    derived = {value.name for value in onnx_model.graph.input}
    nodes = []
    for node in onnx_model.graph.node:
        if node.op_type != 'Shape' and derived.intersection(node.input):
            nodes.append(node)
            derived.update(node.output)
    return nodes


def check_fused_graph(onnx_model):
    """Raise :class:`ExportError` unless every op on the data path is one
    of :data:`FUSED_GRAPH_OPS` and every conv is 3x3 or 1x1."""
    from onnx import helper
    wrong = collections.Counter()
    for node in data_path_nodes(onnx_model):
        if node.op_type not in FUSED_GRAPH_OPS:
            wrong[node.op_type] += 1
        elif node.op_type == 'Conv':
            kernel = next(tuple(helper.get_attribute_value(a))
                          for a in node.attribute if a.name == 'kernel_shape')
            if kernel not in CONV_KERNELS:
                wrong[f'Conv {kernel[0]}x{kernel[1]}'] += 1
    if wrong:
        found = ', '.join(f'{op} x{n}' for op, n in sorted(wrong.items()))
        raise ExportError(f'the graph is not a fused network: it computes '
                          f'with {found} (expected only '
                          f'{", ".join(sorted(FUSED_GRAPH_OPS))})')


def check_images_of(cfg, pattern=None):
    """Paths of the images of the label comparison: ``pattern`` (a glob),
    else the config's validation images that exist (at most
    :data:`MAX_CHECK_IMAGES`)."""
    if pattern:
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise ExportError(f'--check-images {pattern} matches no file')
        return paths
    try:
        dataset = cfg.val_dataloader.dataset
        folder = osp.join(dataset.data_root, dataset.data_prefix.img_path)
    except AttributeError:
        return []
    return sorted(glob.glob(osp.join(folder, '**', '*.png'),
                            recursive=True))[:MAX_CHECK_IMAGES]


def read_images(paths, shape):
    """BGR images resized to ``shape`` (H, W), as the graph takes them."""
    images = []
    for path in paths:
        check_image_file(path)
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ExportError(f'cannot read check image {path}')
        images.append(cv2.resize(image, shape[::-1],
                                 interpolation=cv2.INTER_LINEAR))
    return images


def other_shape(shape):
    """A second input size for a dynamic graph: smaller and odd."""
    return tuple(max(s * 3 // 4, 8) | 1 for s in shape)


@torch.no_grad()
def compare(session, reference, inputs, fp16, with_argmax, dynamic):
    """onnxruntime vs the PyTorch ``reference`` (fp32 logits) on ``inputs``
    (NCHW float32; one by one for a graph of batch 1): ``(max abs diff,
    relative diff, share of equal labels)``; the differences are None for
    a graph that outputs labels."""
    feed = inputs.astype(np.float16) if fp16 else inputs
    batches = [feed] if dynamic else np.split(feed, len(feed))
    output = np.concatenate([session.run(None, {'image': batch})[0]
                             for batch in batches])
    expected = reference(torch.from_numpy(inputs)).numpy()
    if not np.isfinite(expected).all():
        raise ExportError('the model computes NaN or infinite logits: its '
                          'weights are not finite (a diverged training?); '
                          'nothing was written')
    labels = output if with_argmax else output.argmax(axis=1)
    agree = float((labels == expected.argmax(axis=1)).mean())
    if with_argmax:
        return None, None, agree
    max_abs = float(np.abs(output.astype(np.float32) - expected).max())
    return max_abs, max_abs / max(float(np.abs(expected).max()), 1e-12), \
        agree


def verify(onnx_bytes, reference, checks, fp16, with_argmax, dynamic):
    """Run the serialised graph on each ``(name, inputs)`` of ``checks``;
    raise if the logits differ beyond :data:`TOLERANCE`."""
    _, onnxruntime = _require_onnx()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no notes about constant folding
    session = onnxruntime.InferenceSession(
        onnx_bytes, options, providers=['CPUExecutionProvider'])
    tolerance = TOLERANCE['fp16' if fp16 else 'fp32']
    results = {}
    for name, inputs in checks:
        max_abs, relative, agree = compare(session, reference, inputs, fp16,
                                           with_argmax, dynamic)
        if relative is not None and not relative <= tolerance:  # NaN too
            raise ExportError(f'onnxruntime differs from PyTorch on {name} '
                              f'by {relative:.2e} (relative, > '
                              f'{tolerance:g}): nothing was written')
        results[name] = dict(max_abs_diff=max_abs, relative_diff=relative,
                             labels_agree=agree)
    return results


def export_onnx(reference, out, shape=None, dynamic=False, fp16=False,
                with_argmax=False, opset=DEFAULT_OPSET, check_images=None):
    """Export ``reference`` (a loaded model, training or fused form; it is
    left as it is) fused to ``out`` after checking the file computes what
    ``reference`` computes; return what was checked."""
    onnx, _ = _require_onnx()
    fused = fuse_model(copy.deepcopy(reference))
    shape = tuple(shape or default_shape(reference.cfg))
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(1, 3, *shape, generator=gen)
    wrapper = ExportWrapper(make_exportable(
        fused, None if dynamic else example), with_argmax)
    if fp16:
        wrapper.half()
    onnx_bytes = export_to_bytes(
        wrapper, example.half() if fp16 else example, dynamic, opset)
    model = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(model)
    check_fused_graph(model)

    preprocessing = preprocessing_of(reference)
    checks = [(f'a random {shape[0]}x{shape[1]} input', example.numpy())]
    if dynamic:
        size = other_shape(shape)
        checks.append((f'a random {size[0]}x{size[1]} input', torch.randn(
            2, 3, *size, generator=gen).numpy()))
    paths = check_images_of(reference.cfg, check_images)
    if paths:
        checks.append((f'{len(paths)} check images', normalize(
            read_images(paths, shape), preprocessing)))
    results = verify(onnx_bytes, ExportWrapper(reference), checks, fp16,
                     with_argmax, dynamic)

    meta = dict(preprocessing=preprocessing, output=(
        'labels' if with_argmax else 'logits'), arch=backbone_arch(
            fused.state_dict()), precision='fp16' if fp16 else 'fp32')
    dataset_meta = getattr(reference, 'dataset_meta', None) or {}
    if 'classes' in dataset_meta:
        meta['classes'] = list(dataset_meta['classes'])
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    atomic_write(model.SerializeToString(), out)
    image_path_ops = collections.Counter(
        node.op_type for node in data_path_nodes(model))
    return dict(out=out, shape=shape, checks=results, ops=op_types(model),
                image_path_ops=image_path_ops, **meta)
