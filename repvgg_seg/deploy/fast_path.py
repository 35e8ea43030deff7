"""Fast GPU inference of a segmentor: BGR images already on the device
(``N x H x W x 3`` uint8 or float, as frames are decoded) -> label maps.

On one H100 at 1024x2048 (``docs/benchmarks.md``) the fused PSPNet-RepVGG
B2-fast / B1g2-fast / A0-fast run at 34 / 50 / 115 FPS in PyTorch's default
form (fp32 with TF32, NCHW, eager) and at 86 / 137 / 302 FPS here. Each step:

- fp16 weights, cast once (autocast re-casts every weight every call):
  x1.55-1.7;
- channels_last (cuDNN's NHWC kernels, no transposes): +25-32 %, once the
  PSP pooling runs as :class:`~.ops.MatMulAdaptiveAvgPool2d` (PyTorch's NHWC adaptive
  pooling kernel took ~14 ms a call and made channels_last 3x slower);
- conv + bias + ReLU in one cuDNN call (:class:`ConvReLU`): +17-22 %;
- a CUDA graph per input shape (no launch gaps): +2-4 %;
- upsampling + argmax compiled into one kernel, so the full-size logits
  are never written: +1-5 %;
- the data preprocessor's BGR->RGB flip and 1/std folded into the first
  conv: preprocessing is one ``uint8 - mean`` kernel (the mean itself
  cannot be folded: zero padding would then pad with ``-mean``).

All exact but the precision: labels equal the fp32 model's on 99.93 % of
the pixels for an A0 trained on the mini set (bf16: 99.73 %, same speed).
Logits are upsampled before the argmax as MMSeg does (argmax at 1/8 scale
+ nearest upsampling is cheaper, but not the same). No gain: grouped convs
as dense ones, dilated convs as batched sub-images, timing all cuDNN
algorithms; torch.compile of the whole frame took over 85 s to compile.

:class:`FoldedPSPHead` (exact) removes the PSP pyramid's share of the
bottleneck conv: on 2 CPU cores it makes A0-fast at 512x1024 1.84x faster
than the training form, against 1.14x for fusion alone (the unchanged head
is 2/3 of A0's multiply-adds). Its first GPU measurement agreed with fp32
on only 19-36 % of the labels: with ``fuse_relu`` the conv+ReLU pass found
the bottleneck it replaces and moved the head's ReLU into a conv no
longer called; the bottleneck now leaves the module tree.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule

from mmseg.models.decode_heads import PSPHead

from ..models import RepVGGBlock
from ..models.backbones import RB
from ..models.ops import logits_to_labels, pool_with_matmuls
from .fuse import CHECK_INPUT_SHAPE, fuse_model
from ..utils.errors import InvalidArgument

DTYPES = dict(fp32=torch.float32, tf32=torch.float32, fp16=torch.float16,
              bf16=torch.bfloat16)
#: Eager calls before a CUDA graph is captured: cudnn.benchmark autotunes
#: (and torch.compile compiles) on the first, outside the graph.
GRAPH_WARMUP_CALLS = 3
#: Folded normalisation vs the data preprocessor's, relative (fp32, TF32
#: off): a 1/std left out would be off by ~50x.
NORMALIZATION_TOLERANCE = 1e-3
#: :func:`optimize_for_inference` on a CPU: what runs there.
CPU_OPTIONS = dict(precision='fp32', cuda_graph=False, fuse_relu=False,
                   compile_postprocess=False, fold_psp=True)


def image_convs(model, images):
    """The convs that read ``images`` themselves, found by running the model
    once (a two-path network such as BiSeNet has one in each path)."""
    readers, hooks = {}, []

    def record(conv, args):
        if args[0] is images:
            readers[id(conv)] = conv

    for conv in model.modules():
        if isinstance(conv, nn.Conv2d):
            hooks.append(conv.register_forward_pre_hook(record))
    try:
        model(images, mode='tensor')
    finally:
        for hook in hooks:
            hook.remove()
    return list(readers.values())


@torch.no_grad()
def fold_input_normalization(model):
    """Fold the data preprocessor's channel flip and ``1/std`` into every
    conv that reads the image, in place; return the per-channel mean (in
    the input's channel order) that the input still needs subtracted.
    Checked on a random image: the model must read the image through those
    convs alone."""
    pre = model.data_preprocessor
    device = next(model.parameters()).device
    # the model's channel c reads the input's channel order[c]
    order = [2, 1, 0] if pre.channel_conversion else [0, 1, 2]
    mean, std = torch.zeros(3, device=device), torch.ones(3, device=device)
    if pre._enable_normalize:
        mean[order], std[order] = pre.mean.flatten(), pre.std.flatten()
    raw = 128 + 60 * torch.randn(CHECK_INPUT_SHAPE, generator=torch.Generator(
    ).manual_seed(0)).to(device)
    image = ((raw - mean[:, None, None]) / std[:, None, None])[:, order]
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        expected = model(image, mode='tensor')
        convs = image_convs(model, image)
        for conv in convs:
            if conv.in_channels != 3 or conv.groups != 1:
                raise InvalidArgument('a conv that reads the image must take '
                                      f'its 3 channels with groups=1: {conv}')
            weight = conv.weight.new_empty(conv.weight.shape)
            weight[:, order] = conv.weight / std[order].reshape(1, 3, 1, 1)
            conv.weight.copy_(weight)
        actual = model(raw - mean[:, None, None], mode='tensor')
    if not convs or (actual - expected).abs().max() > \
            NORMALIZATION_TOLERANCE * expected.abs().max():
        raise InvalidArgument('cannot fold the input normalisation: the model '
                              'reads the image other than through its convs')
    return mean


def interpolation_matrix(size, out, align_corners):
    """``out x size``: bilinear resizing along one axis as a matrix, read
    off ``F.interpolate`` itself (its bins and edge clamping, exactly)."""
    eye = torch.eye(size, dtype=torch.float64)[None, :, :, None]
    resized = F.interpolate(eye, size=(out, 1), mode='bilinear',
                            align_corners=align_corners)
    return resized[0, :, :, 0].T


def shifted_rows(matrix):
    """``3 x rows x cols``: ``matrix`` read at row offsets -1, 0, +1, with
    zero rows beyond the edges (a 3x3 conv's taps and zero padding)."""
    rows = matrix.shape[0]
    shifted = matrix.new_zeros(3, *matrix.shape)
    shifted[0, 1:], shifted[1], shifted[2, :rows - 1] = (matrix[:-1], matrix,
                                                         matrix[1:])
    return shifted


class FoldedPSPHead(nn.Module):
    """A fused PSPHead with its pyramid branches folded through the
    bottleneck conv, exactly. The bottleneck is a 3x3 conv over
    ``[x, up(p_1), up(p_2), up(p_3), up(p_6)]``; its part over each
    upsampled branch equals ``sum_taps shift(up(W_tap @ p_s))`` (channel
    mixing commutes with bilinear resizing), and resizing + shifting are
    matrices along H and W. So the branches cost a few matmuls on s x s
    maps instead of 4 x 512 of the conv's input channels at full feature
    size (60 % of PSPNet-RepVGG-A0's multiply-adds)."""

    def __init__(self, head):
        super().__init__()
        conv = head.bottleneck.conv
        if (head.bottleneck.with_norm or conv.kernel_size != (3, 3)
                or conv.padding != (1, 1) or conv.stride != (1, 1)
                or conv.dilation != (1, 1) or conv.groups != 1):
            raise InvalidArgument('FoldedPSPHead needs a fused PSPHead with a '
                             f'3x3 "same" bottleneck, got {conv}')
        self.head = head
        # the bottleneck lives on as features_conv + branch_taps; out of the
        # module tree, no conv+ReLU pass can fuse its ReLU into a conv this
        # head no longer calls (that dropped the ReLU, and 70 % of labels)
        self.activate = head.bottleneck.activate
        del head.bottleneck
        features = conv.in_channels - len(head.psp_modules) * head.channels
        self.features_conv = nn.Conv2d(features, conv.out_channels, 3,
                                       padding=1).to(conv.weight)
        with torch.no_grad():
            self.features_conv.weight.copy_(conv.weight[:, :features])
            self.features_conv.bias.copy_(conv.bias)
        # (branches, 3, 3, out, branch channels): one matrix per tap
        self.register_buffer('branch_taps', conv.weight[:, features:].reshape(
            conv.out_channels, len(head.psp_modules), head.channels, 3,
            3).permute(1, 3, 4, 0, 2).clone())
        self._resizers = {}

    def _resizer(self, size, out, like):
        """``3 x out x size``: resizing ``size`` -> ``out`` read at the
        three tap offsets (cached per size)."""
        key = (size, out, like.dtype, like.device)
        if key not in self._resizers:
            self._resizers[key] = shifted_rows(interpolation_matrix(
                size, out, self.head.align_corners)).to(like)
        return self._resizers[key]

    def forward(self, inputs):
        head = self.head
        x = head._transform_inputs(inputs)
        n, _, h, w = x.shape
        # per branch and tap (i, j): W_ij @ p at s x s, resized + shifted
        # along W; then along H for all branches and row taps at once
        partial, along_h = [], []
        for taps, branch in zip(self.branch_taps, head.psp_modules):
            p = branch(x)
            mixed = torch.einsum('ijoc,ncab->nijoab', taps, p)
            partial.append(torch.einsum(
                'nijoab,jwb->niawo', mixed,
                self._resizer(p.shape[3], w, x)).flatten(1, 2).flatten(2))
            along_h.append(self._resizer(p.shape[2], h, x).permute(
                1, 0, 2).flatten(1))
        branches = torch.matmul(torch.cat(along_h, dim=1),
                                torch.cat(partial, dim=1))
        branches = branches.view(n, h, w, -1).permute(0, 3, 1, 2)
        feats = self.activate(self.features_conv(x) + branches)
        return head.cls_seg(feats)


class ConvReLU(nn.Module):
    """A conv and the ReLU after it as one cuDNN call (bias and ReLU in the
    conv kernel's epilogue instead of two more passes over the output);
    off CUDA, the two calls (so the substitution is testable anywhere)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        conv = self.conv
        if not x.is_cuda:
            return F.relu(conv(x))
        return torch.cudnn_convolution_relu(x, conv.weight, conv.bias,
                                            conv.stride, conv.padding,
                                            conv.dilation, conv.groups)


def conv_relu_pairs(model):
    """``(owner, conv name, act name)`` of every conv whose output goes
    straight into a ReLU: fused RepVGG and RDRNet blocks and norm-free
    ConvModules."""
    for m in model.modules():
        if (isinstance(m, RepVGGBlock) and m.deploy and m.se_layer is None
                and isinstance(m.act, nn.ReLU)):
            yield m, 'branch_reparam', 'act'
        elif isinstance(m, RB) and m.deploy and isinstance(m.relu, nn.ReLU):
            yield m, 'reparam_3x3', 'relu'
        elif (isinstance(m, ConvModule) and not m.with_norm
              and m.with_activation and isinstance(m.activate, nn.ReLU)
              and not m.with_explicit_padding
              and m.order.index('conv') < m.order.index('act')):
            yield m, 'conv', 'activate'


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
        fold_psp: a PSPHead becomes :class:`FoldedPSPHead` (exact; labels
            checked against fp32 on the GPU by tests/test_fast_path_gpu.py).
        compile_mode: ``torch.compile`` mode of the whole function (None:
            eager); without its own CUDA graphs when ``cuda_graph`` is set.
    """

    def __init__(self, model, precision='fp16', autocast=False,
                 channels_last=True, cuda_graph=True, cudnn_benchmark=True,
                 fuse_relu=True, compile_postprocess=True, fold_psp=True,
                 compile_mode=None):
        self.device = next(model.parameters()).device
        if cuda_graph and self.device.type != 'cuda':
            raise InvalidArgument('cuda_graph needs the model on a CUDA '
                                  f'device, it is on {self.device}')
        self.precision, self.autocast = precision, autocast
        self.dtype = DTYPES[precision]
        self.cuda_graph, self.cudnn_benchmark = cuda_graph, cudnn_benchmark
        self.channels_last = channels_last
        # every conv+BN pair folded (RDRNet's fusion convs too, which its
        # fused checkpoints keep); a BN before its conv stays as it is
        model = fuse_model(copy.deepcopy(model), strict=False)
        self.mean = fold_input_normalization(model).reshape(1, 3, 1, 1)
        self.align_corners = model.decode_head.align_corners
        self.label_dtype = (torch.uint8 if model.decode_head.num_classes
                            <= 255 else torch.int64)
        if fold_psp and isinstance(model.decode_head, PSPHead):
            model.decode_head = FoldedPSPHead(model.decode_head)
        if channels_last:
            pool_with_matmuls(model)
        if fuse_relu:
            for owner, conv, act in conv_relu_pairs(model):
                setattr(owner, conv, ConvReLU(getattr(owner, conv)))
                setattr(owner, act, nn.Identity())
        weight_dtype = torch.float32 if autocast else self.dtype
        model.to(weight_dtype)
        self.mean = self.mean.to(weight_dtype)
        if channels_last:  # the convs' weights (other tensors may be 5-D)
            for conv in model.modules():
                if isinstance(conv, nn.Conv2d):
                    conv.to(memory_format=torch.channels_last)
        self.model = model
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
        # the logits are small: NCHW gives the upsampling and the argmax
        # contiguous class planes
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
            raise InvalidArgument('expected N x H x W x 3 (or H x W x 3) BGR '
                             f'images, got shape {tuple(images.shape)}')
        if images.device != self.device:
            raise InvalidArgument(f'images are on {images.device}, the model on '
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


def optimize_for_inference(model, **options):
    """A :class:`FastSegmenter` of ``model`` (left unchanged) on its device:
    ``images -> labels``. On a GPU the defaults are the fastest path
    measured (fp16, channels_last, conv+ReLU fused, compiled
    postprocessing, CUDA graph); ``precision='fp32'`` (or ``'tf32'``)
    stays available. On a CPU the defaults are :data:`CPU_OPTIONS`."""
    if next(model.parameters()).device.type != 'cuda':
        options = {**CPU_OPTIONS, **options}
    return FastSegmenter(model, **options)
