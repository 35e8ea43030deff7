"""Fast GPU inference of a segmentor: BGR images already on the device
(``N x H x W x 3`` uint8 or float, as frames are decoded) -> label maps.

Everything here is exact except the reduced precision, whose effect is
measured as label agreement with the fp32 model (``tools/benchmark.py
--fast-path``; results in ``docs/benchmarks.md``):

- the model is fused (:func:`~repvgg_seg.deploy.fuse.fuse_model`: one 3x3
  conv per RepVGG block, no BN anywhere);
- the data preprocessor's BGR->RGB flip and 1/std are folded into the
  first conv, so preprocessing is one ``uint8 - mean`` kernel (the mean
  itself cannot be folded: zero padding would then pad with ``-mean``);
- weights are cast once (autocast would re-cast every weight every call);
- channels_last, cudnn.benchmark, and a CUDA graph per input shape, which
  removes the launch gaps between the ~50 kernels of a frame;
- logits are upsampled to the input size *before* the argmax, as MMSeg
  does (argmax at 1/8 scale + nearest upsampling is cheaper but differs).
"""
import copy
import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from ..models import RepVGGBlock
from .fuse import fuse_model

DTYPES = dict(fp32=torch.float32, tf32=torch.float32, fp16=torch.float16,
              bf16=torch.bfloat16)
#: Eager calls before a CUDA graph is captured: cudnn.benchmark autotunes
#: (and torch.compile compiles) on the first, outside the graph.
GRAPH_WARMUP_CALLS = 3
#: ``tools/benchmark.py --fast-path`` variant flags -> keyword arguments.
VARIANT_FLAGS = {
    'cl': dict(channels_last=True),
    'nchw': dict(channels_last=False),
    'graph': dict(cuda_graph=True),
    'eager': dict(cuda_graph=False),
    'nobench': dict(cudnn_benchmark=False),
    'relu': dict(fuse_relu=True),
    'cpost': dict(compile_postprocess=True),
    'compile': dict(compile_mode='default'),
    'max-autotune': dict(compile_mode='max-autotune-no-cudagraphs'),
}


def logits_to_labels(logits, size, align_corners=False):
    """MMSeg's postprocessing: logits resized (bilinear) to ``size``, then
    the argmax over classes."""
    logits = F.interpolate(logits, size=tuple(size), mode='bilinear',
                           align_corners=align_corners)
    return logits.argmax(dim=1)


def parse_variant(text):
    """``'fp16+cl+graph'`` -> :class:`FastSegmenter` keyword arguments: a
    precision (``fp32``, ``tf32``, ``fp16``, ``bf16``; ``-autocast`` keeps
    fp32 weights under autocast) and flags of :data:`VARIANT_FLAGS`.
    Unnamed options take the fast defaults."""
    precision, *flags = text.split('+')
    kwargs = dict(autocast=precision.endswith('-autocast'))
    kwargs['precision'] = precision.removesuffix('-autocast')
    if kwargs['precision'] not in DTYPES:
        raise ValueError(f'unknown precision {precision!r} in variant '
                         f'{text!r}; choose from {sorted(DTYPES)}')
    for flag in flags:
        if flag not in VARIANT_FLAGS:
            raise ValueError(f'unknown flag {flag!r} in variant {text!r}; '
                             f'choose from {sorted(VARIANT_FLAGS)}')
        kwargs.update(VARIANT_FLAGS[flag])
    return kwargs


def variant_name(**options):
    """The canonical variant string of :class:`FastSegmenter` options, every
    layout/graph choice named and the other flags that are on: a label
    that keeps its meaning if the defaults change."""
    defaults = inspect.signature(FastSegmenter).parameters
    resolved = {k: p.default for k, p in defaults.items()
                if p.default is not p.empty}
    resolved.update(options)
    parts = [resolved['precision'] + ('-autocast' if resolved['autocast']
                                      else ''),
             'cl' if resolved['channels_last'] else 'nchw',
             'graph' if resolved['cuda_graph'] else 'eager']
    parts += [flag for flag, flag_options in VARIANT_FLAGS.items()
              if flag not in ('cl', 'nchw', 'graph', 'eager')
              and all(resolved[k] == v for k, v in flag_options.items())]
    return '+'.join(parts)


def first_conv(model):
    """The conv that reads the image (the first one registered)."""
    return next(m for m in model.backbone.modules()
                if isinstance(m, nn.Conv2d))


@torch.no_grad()
def fold_input_normalization(model):
    """Fold the data preprocessor's channel flip and ``1/std`` into the
    first conv, in place; return the per-channel mean (in the input's
    channel order) that the input still needs subtracted."""
    pre, conv = model.data_preprocessor, first_conv(model)
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError('the first conv must read the 3 image channels '
                         f'with groups=1, got {conv}')
    # the model's channel c reads the input's channel order[c]
    order = [2, 1, 0] if pre.channel_conversion else [0, 1, 2]
    weight = conv.weight.new_empty(conv.weight.shape)
    mean = torch.zeros(3, device=weight.device)
    if pre._enable_normalize:
        weight[:, order] = conv.weight / pre.std.reshape(1, 3, 1, 1)
        mean[order] = pre.mean.flatten()
    else:
        weight[:, order] = conv.weight
    conv.weight.copy_(weight)
    return mean


class SeparablePool(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matmuls with pooling matrices (along
    W, then H), reading the input once: PyTorch's kernel for channels_last
    input takes ~14 ms per PSPNet pooling at 1024x2048 on an H100. Same
    bins as PyTorch's; the means round differently (matmul order)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = nn.modules.utils._pair(output_size)
        self._matrices = {}

    def _matrix(self, size, out, like):
        """``out x size``: row ``i`` averages ``floor(i*size/out)`` up to
        ``ceil((i+1)*size/out)``, PyTorch's adaptive bins."""
        key = (size, out, like.dtype, like.device)
        if key not in self._matrices:
            matrix = torch.zeros(out, size)
            for i in range(out):
                start, end = i * size // out, -(-(i + 1) * size // out)
                matrix[i, start:end] = 1 / (end - start)
            self._matrices[key] = matrix.to(like)
        return self._matrices[key]

    def forward(self, x):
        n, c, h, w = x.shape
        out_h, out_w = (o or s for o, s in zip(self.output_size, (h, w)))
        pooled = torch.matmul(self._matrix(w, out_w, x),
                              x.permute(0, 2, 3, 1))  # n, h, out_w, c
        pooled = torch.matmul(self._matrix(h, out_h, x),
                              pooled.reshape(n, h, out_w * c))
        return pooled.view(n, out_h, out_w, c).permute(0, 3, 1, 2)


class ConvReLU(nn.Module):
    """A conv and the ReLU after it as one cuDNN call (bias and ReLU in the
    conv kernel's epilogue instead of two more passes over the output)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        conv = self.conv
        return torch.cudnn_convolution_relu(x, conv.weight, conv.bias,
                                            conv.stride, conv.padding,
                                            conv.dilation, conv.groups)


def _conv_relu_pairs(model):
    """``(owner, conv name, act name)`` of every conv whose output goes
    straight into a ReLU: fused RepVGG blocks and norm-free ConvModules."""
    for m in model.modules():
        if (isinstance(m, RepVGGBlock) and m.deploy and m.se is None
                and isinstance(m.act, nn.ReLU)):
            yield m, 'branch_reparam', 'act'
        elif (isinstance(m, ConvModule) and not m.with_norm
              and m.with_activation and isinstance(m.activate, nn.ReLU)
              and not m.with_explicit_padding
              and m.order.index('conv') < m.order.index('act')):
            yield m, 'conv', 'activate'


def _replace_modules(model, cls, make):
    """Replace every ``cls`` child of ``model`` by ``make(child)``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, cls):
                setattr(parent, name, make(child))


class FastSegmenter:
    """Label maps of BGR images on the model's device, as fast as the
    options allow. Build it with :func:`optimize_for_inference`.

    Args:
        model: a segmentor (fused or not; a fused copy is made).
        precision: ``fp32`` (TF32 off), ``tf32``, ``fp16`` or ``bf16``.
        autocast: keep fp32 weights and run under autocast (slower: for
            comparison).
        channels_last: NHWC activations (what the tensor cores read).
        cuda_graph: replay one CUDA graph per input shape (CUDA only).
        cudnn_benchmark: let cuDNN time its algorithms on the first call.
        fuse_relu: conv+ReLU pairs as :class:`ConvReLU` (CUDA only).
        compile_postprocess: ``torch.compile`` the upsampling + argmax
            into one kernel (the logits at full size are never written).
        compile_mode: ``torch.compile`` mode of the whole function (None:
            eager); without its own CUDA graphs when ``cuda_graph`` is set.
    """

    def __init__(self, model, precision='fp16', autocast=False,
                 channels_last=True, cuda_graph=True, cudnn_benchmark=True,
                 fuse_relu=False, compile_postprocess=False,
                 compile_mode=None):
        self.device = next(model.parameters()).device
        if cuda_graph and self.device.type != 'cuda':
            raise ValueError('cuda_graph needs the model on a CUDA device, '
                             f'it is on {self.device}')
        self.precision, self.autocast = precision, autocast
        self.dtype = DTYPES[precision]
        self.cuda_graph, self.cudnn_benchmark = cuda_graph, cudnn_benchmark
        self.channels_last = channels_last
        model = fuse_model(copy.deepcopy(model))
        self.mean = fold_input_normalization(model).reshape(1, 3, 1, 1)
        if channels_last:
            _replace_modules(model, nn.AdaptiveAvgPool2d,
                             lambda pool: SeparablePool(pool.output_size))
        if fuse_relu:
            for owner, conv, act in _conv_relu_pairs(model):
                setattr(owner, conv, ConvReLU(getattr(owner, conv)))
                setattr(owner, act, nn.Identity())
        weight_dtype = torch.float32 if autocast else self.dtype
        model.to(weight_dtype)
        self.mean = self.mean.to(weight_dtype)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.align_corners = model.decode_head.align_corners
        self.label_dtype = (torch.uint8 if model.decode_head.num_classes
                            <= 255 else torch.int64)
        self._postprocess = (torch.compile(self._eager_postprocess)
                             if compile_postprocess else
                             self._eager_postprocess)
        self._labels = (torch.compile(self._eager_labels, mode=compile_mode)
                        if compile_mode else self._eager_labels)
        self._graphs = {}

    def _eager_labels(self, images):
        x = images.permute(0, 3, 1, 2)  # NCHW view of NHWC memory
        if x.dtype != torch.uint8:
            x = x.to(self.mean.dtype)
        x = x - self.mean  # uint8 - mean: cast and normalise in one kernel
        x = x.contiguous(memory_format=torch.channels_last
                         if self.channels_last else torch.contiguous_format)
        with torch.autocast(self.device.type, self.dtype,
                            enabled=self.autocast):
            logits = self.model(x, mode='tensor')
        # on NCHW logits (small), upsampling and argmax read and write
        # contiguous rows; PyTorch's NHWC kernels are several times slower
        return self._postprocess(logits.contiguous(), x.shape[2:])

    def _eager_postprocess(self, logits, size):
        return logits_to_labels(logits, size,
                                self.align_corners).to(self.label_dtype)

    def _flags(self):
        return torch.backends.cudnn.flags(
            enabled=True, benchmark=self.cudnn_benchmark,
            allow_tf32=self.precision != 'fp32')

    def _capture(self, images):
        static_images = images.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP_CALLS):
                self._labels(static_images)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_labels = self._labels(static_images)
        return static_images, graph, static_labels

    @torch.inference_mode()
    def __call__(self, images):
        """``N x H x W x 3`` (or ``H x W x 3``) BGR, uint8 or float in
        0..255, on the model's device -> ``N x H x W`` (or ``H x W``)
        labels (uint8 up to 255 classes, else int64)."""
        single = images.dim() == 3
        if single:
            images = images[None]
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError('expected N x H x W x 3 (or H x W x 3) BGR '
                             f'images, got shape {tuple(images.shape)}')
        if images.device != self.device:
            raise ValueError(f'images are on {images.device}, the model on '
                             f'{self.device}: move them first')
        with self._flags():
            if not self.cuda_graph:
                labels = self._labels(images)
            else:
                key = (tuple(images.shape), images.dtype)
                if key not in self._graphs:
                    self._graphs[key] = self._capture(images)
                static_images, graph, static_labels = self._graphs[key]
                static_images.copy_(images)
                graph.replay()
                labels = static_labels.clone()  # the next replay reuses it
        return labels[0] if single else labels


def optimize_for_inference(model, precision='fp16', **options):
    """A :class:`FastSegmenter` of ``model`` (left unchanged) on its device:
    ``images -> labels``. On a GPU the defaults are the fastest path
    measured; ``precision='fp32'`` stays available (and runs on the CPU
    with ``cuda_graph=False``)."""
    return FastSegmenter(model, precision, **options)
