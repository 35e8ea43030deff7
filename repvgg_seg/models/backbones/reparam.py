"""Blocks whose parallel branches fuse into one conv (structural
re-parameterization), and the kinds of branch that fuse.

In training such a block sums the outputs of its branches. With its BN
layers in eval mode every branch is an affine map, equal to one conv of the
block's geometry (kernel size, stride, padding, dilation, groups), so
:meth:`ReparamBlock.switch_to_deploy` replaces the branches by a single conv
with bias whose kernel and bias are the sums of theirs: exact, up to
rounding. Each kind of branch gives its own ``(kernel, bias)``
(:func:`branch_kernel`):

* conv + BN (a ``ConvModule``, conv then BN): any kernel no larger than the
  block's, zero-padded around the centre (RepVGG's 3x3 and 1x1, RDRNet's
  3x3, the RPPM's grouped 3x3s);
* :class:`Block1x1`, a 1x1 conv(+bias)+BN then a 1x1 conv(+bias)+BN with
  nothing nonlinear between (RDRNet): one 1x1 conv ``W2 @ W1``, bias
  ``b2 + W2 @ b1``;
* a BN alone: the identity (channel ``i`` to itself, within its group)
  scaled by the BN.

The blocks built on this: :class:`~.repvgg_blocks.RepVGGBlock`,
:class:`~.rdrnet.RB` and :class:`~.rdrnet.RepParallel`.
"""
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils.errors import InvalidArgument


class ConvGeometry(NamedTuple):
    """What a fused conv is, apart from its weights."""
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 1
    dilation: int = 1
    groups: int = 1


def fold_bn(kernel, bias, norm):
    """``(kernel, bias)`` of a conv (``bias`` None: without one) followed
    by the eval-mode BN (or SyncBN) ``norm``, as one conv."""
    scale = norm.weight / (norm.running_var + norm.eps).sqrt()
    shift = -norm.running_mean if bias is None else bias - norm.running_mean
    return kernel * scale.reshape(-1, 1, 1, 1), norm.bias + shift * scale


def pad_kernel(kernel, kernel_size):
    """A smaller odd kernel zero-padded around its centre to
    ``kernel_size``: the same conv when the padding grows by as much."""
    pad = (kernel_size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad] * 4) if pad else kernel


def conv_bn_kernel(branch, geometry):
    """A ``ConvModule`` branch (conv, then BN) as a conv of ``geometry``."""
    kernel, bias = fold_bn(branch.conv.weight, branch.conv.bias, branch.norm)
    return pad_kernel(kernel, geometry.kernel_size), bias


def identity_kernel(norm, geometry):
    """A BN branch: the identity as a (grouped) conv, 1 at the centre of
    each channel's own tap (channel ``i`` is input ``i % (C / groups)`` of
    its group), then the BN folded in."""
    per_group = geometry.in_channels // geometry.groups
    size, centre = geometry.kernel_size, geometry.kernel_size // 2
    kernel = norm.weight.new_zeros(geometry.in_channels, per_group, size,
                                   size)
    idx = torch.arange(geometry.in_channels, device=kernel.device)
    kernel[idx, idx % per_group, centre, centre] = 1
    return fold_bn(kernel, None, norm)


class Block1x1(BaseModule):
    """A 1x1 conv (with bias) + BN, then a 1x1 conv (with bias) + BN, nothing
    nonlinear between: RDRNet's 1x1 path (its name and module names
    ``conv1``/``conv2``, so its checkpoints load). Linear in eval mode, so
    it fuses as one 1x1 conv (:meth:`equivalent_kernel`). No groups."""

    def __init__(self, in_channels, out_channels, stride=1,
                 norm_cfg=dict(type='BN')):
        super().__init__()
        with warnings.catch_warnings():  # the biases are RDRNet's (its keys)
            warnings.filterwarnings('ignore', 'Unnecessary conv bias')
            self.conv1 = ConvModule(in_channels, out_channels, 1, stride,
                                    bias=True, norm_cfg=norm_cfg,
                                    act_cfg=None)
            self.conv2 = ConvModule(out_channels, out_channels, 1, bias=True,
                                    norm_cfg=norm_cfg, act_cfg=None)

    def forward(self, x):
        return self.conv2(self.conv1(x))

    def equivalent_kernel(self, geometry):
        """The chain as one conv of ``geometry``: ``W2 @ W1``,
        ``b2 + W2 @ b1`` (each BN folded into its conv first)."""
        kernel1, bias1 = fold_bn(self.conv1.conv.weight,
                                 self.conv1.conv.bias, self.conv1.norm)
        kernel2, bias2 = fold_bn(self.conv2.conv.weight,
                                 self.conv2.conv.bias, self.conv2.norm)
        matrix1, matrix2 = kernel1[:, :, 0, 0], kernel2[:, :, 0, 0]
        kernel = (matrix2 @ matrix1)[:, :, None, None]
        return (pad_kernel(kernel, geometry.kernel_size),
                bias2 + matrix2 @ bias1)


def branch_kernel(branch, geometry):
    """``(kernel, bias)`` of one eval-mode branch as a conv of
    ``geometry``, whatever its kind (see the module docstring)."""
    if isinstance(branch, _BatchNorm):
        return identity_kernel(branch, geometry)
    if isinstance(branch, Block1x1):
        return branch.equivalent_kernel(geometry)
    if isinstance(branch, ConvModule):
        return conv_bn_kernel(branch, geometry)
    raise TypeError(f'no fusion rule for a {type(branch).__name__} branch')


class ReparamBlock(BaseModule):
    """Parallel branches summed in training, one conv once fused.

    A subclass names its branches in :attr:`branch_names` (the order they
    are summed in; an attribute may be None: branch absent) and its fused
    conv in :attr:`fused_name`, sets ``self.geometry`` (a
    :class:`ConvGeometry`), ``self.conv_cfg`` and ``self.deploy``, and builds
    either the branches or, with ``deploy``, :meth:`_fused_conv` under
    ``fused_name``. Its forward calls :meth:`forward_branches`.
    """

    branch_names = ()
    fused_name = 'reparam'
    #: The error for arguments that cannot build a fusible block.
    argument_error = InvalidArgument

    def _fused_conv(self):
        g = self.geometry
        return build_conv_layer(self.conv_cfg, g.in_channels, g.out_channels,
                                g.kernel_size, stride=g.stride,
                                padding=g.padding, dilation=g.dilation,
                                groups=g.groups, bias=True)

    def _check_norm(self, norm):
        """Only a BatchNorm (BN, SyncBN) is an affine map in eval mode."""
        if not isinstance(norm, _BatchNorm):
            raise self.argument_error(
                f'{type(self).__name__}: norm_cfg {self.norm_cfg} builds '
                f'{type(norm).__name__}; re-parameterization folds only '
                'BatchNorm layers (BN, SyncBN)')

    def branches(self):
        """The branches present, in summing order."""
        return [branch for branch in (getattr(self, name)
                                      for name in self.branch_names)
                if branch is not None]

    def forward_branches(self, x):
        if self.deploy:
            return getattr(self, self.fused_name)(x)
        branches = self.branches()
        out = branches[0](x)
        for branch in branches[1:]:
            out = out + branch(x)
        return out

    @torch.no_grad()
    def reparameterize(self):
        """The single kernel and bias equal to the branches (eval mode)."""
        kernels = [branch_kernel(branch, self.geometry)
                   for branch in self.branches()]
        kernel, bias = kernels[0]
        for other_kernel, other_bias in kernels[1:]:
            kernel, bias = kernel + other_kernel, bias + other_bias
        return kernel, bias

    def switch_to_deploy(self):
        """Replace the branches by the fused conv, in place."""
        if self.deploy:
            return
        kernel, bias = self.reparameterize()
        fused = self._fused_conv().to(kernel.device, kernel.dtype)
        fused.weight.data.copy_(kernel)
        fused.bias.data.copy_(bias)
        setattr(self, self.fused_name, fused)
        for name in self.branch_names:
            delattr(self, name)
        self.deploy = True
