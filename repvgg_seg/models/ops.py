"""Exact matrix forms shared by channels_last training, the fast path and
the ONNX export: adaptive average pooling and bilinear resizing as two
matrix products each, and MMSeg's logits -> labels."""
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F


def adaptive_pool_matrix(size, bins):
    """``bins x size`` matrix whose rows average the input positions of each
    adaptive-pooling bin, ``[floor(i*size/bins), ceil((i+1)*size/bins))`` as
    PyTorch defines them. Tensor ops, so that traced with a dynamic ``size``
    (ONNX export) it follows the input size at run time."""
    index = torch.arange(bins, dtype=torch.float32)
    start = torch.floor(index * size / bins)
    end = torch.ceil((index + 1) * size / bins)
    position = torch.arange(size).to(torch.float32)[None]
    inside = (position >= start[:, None]) & (position < end[:, None])
    return inside.to(torch.float32) / (end - start)[:, None]


class MatMulAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two matrix products, exactly (the means
    round differently: summation order).

    Why: ONNX has no adaptive pooling (and PyTorch's exporter refuses bins
    that do not divide the input, let alone dynamic sizes); PyTorch's kernel
    for channels_last input took ~14 ms per PSPNet pooling at 1024x2048 on
    an H100. A channels_last input is pooled along W then H without leaving
    NHWC. With ``input_size`` the matrices are constants (a static export);
    without, they are built for each input size (and cached when eager).
    An output size of ``None`` keeps that side.
    """

    def __init__(self, output_size, input_size=None):
        super().__init__()
        self.output_size = nn.modules.utils._pair(output_size)
        self.input_size = input_size
        self._cache = {}
        if input_size is not None:
            rows, cols = self._matrices(input_size, torch.empty(0))
            self.register_buffer('rows', rows)
            self.register_buffer('cols', cols)

    def _matrices(self, size, like):
        bins = [b or s for b, s in zip(self.output_size, size)]
        return [adaptive_pool_matrix(s, b).to(like) for s, b in zip(size,
                                                                    bins)]

    def _input_matrices(self, x):
        if self.input_size is not None:
            return self.rows.to(x.dtype), self.cols.to(x.dtype)
        size = tuple(x.shape[-2:])
        if torch.jit.is_tracing():
            return self._matrices(size, x)
        key = (size, x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = self._matrices(size, x)
        return self._cache[key]

    def forward(self, x):
        rows, cols = self._input_matrices(x)
        if not x.is_contiguous(memory_format=torch.channels_last) or \
                x.is_contiguous():
            return rows @ x @ cols.t()
        n, c, h, _ = x.shape
        pooled = torch.matmul(cols, x.permute(0, 2, 3, 1))  # n, h, out_w, c
        out_h, out_w = rows.shape[0], cols.shape[0]
        pooled = torch.matmul(rows, pooled.reshape(n, h, out_w * c))
        return pooled.view(n, out_h, out_w, c).permute(0, 3, 1, 2)


def pool_with_matmuls(model):
    """Replace, in place, every ``nn.AdaptiveAvgPool2d`` of ``model`` by
    :class:`MatMulAdaptiveAvgPool2d` (no parameters or buffers: the state
    dict is unchanged); returns how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(parent, name,
                        MatMulAdaptiveAvgPool2d(child.output_size))
                count += 1
    return count


def bilinear_matrix(in_size, out_size, align_corners=False):
    """``out_size x in_size`` matrix of 1-d linear interpolation, as
    ``F.interpolate(mode='bilinear')`` places and weighs the source
    positions (given an output size; negative sources clamp to 0)."""
    dst = torch.arange(out_size, dtype=torch.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.
        src = dst * scale
    else:
        src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    frac = src - low
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    matrix.index_put_((rows, low), 1 - frac, accumulate=True)
    matrix.index_put_((rows, high), frac, accumulate=True)
    return matrix.float()


@functools.lru_cache(maxsize=16)
def _resize_matrices(in_size, out_size, align_corners, device):
    return (bilinear_matrix(in_size[0], out_size[0], align_corners).to(device),
            bilinear_matrix(in_size[1], out_size[1],
                            align_corners).t().to(device))


def resize_bilinear(x, size, align_corners=False):
    """``F.interpolate(x, size, mode='bilinear')`` in float32 as two matrix
    products (equal up to rounding). Why: the backward of PyTorch's
    upsampling kernel scatters with atomics, ~0.8 ms for a 2x19x512x1024
    loss map on an H200; the products' backward is two more products."""
    rows, cols = _resize_matrices(tuple(x.shape[-2:]), tuple(size),
                                  bool(align_corners), x.device)
    with torch.autocast(x.device.type, enabled=False):
        return rows @ x.float() @ cols


def logits_to_labels(logits, size, align_corners=False):
    """MMSeg's postprocessing: logits resized (bilinear) to ``size``, then
    the argmax over classes."""
    logits = F.interpolate(logits, size=tuple(size), mode='bilinear',
                           align_corners=align_corners)
    return logits.argmax(dim=1)
