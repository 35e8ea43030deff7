"""The RepVGG block and its squeeze-and-excitation layer.

Training form: ``3x3 conv+BN + 1x1 conv+BN (+ identity BN)``, then the
activation; :meth:`RepVGGBlock.switch_to_deploy` folds the branches into one
3x3 conv with bias, exactly (the block is a :class:`~.reparam.ReparamBlock`:
the fusion lives next to the branches it fuses).
Arguments, attribute and module names are mmpretrain's (``padding``,
``se_cfg``, ``conv_cfg``, ``act_cfg``; ``branch_*``, ``se_layer``), so code
and checkpoints written for mmpretrain's block work with this one.
"""
import contextlib

import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.models.utils import make_divisible
from ..repvgg_archs import RepVGGArgumentError
from .reparam import ConvGeometry, ReparamBlock

#: conv_cfg types that build a plain ``nn.Conv2d``, the only conv the
#: fusion is exact for.
PLAIN_CONV_TYPES = ('Conv', 'Conv2d')


def check_conv_cfg(conv_cfg):
    """Refuse conv types that re-parameterization cannot fuse."""
    if conv_cfg is not None and conv_cfg.get('type') not in PLAIN_CONV_TYPES:
        raise RepVGGArgumentError(
            f'RepVGG: conv_cfg {conv_cfg} is out of scope: the branches are '
            f'fused into one plain convolution, exact only for '
            f'{PLAIN_CONV_TYPES} (or conv_cfg=None)')


class SELayer(BaseModule):
    """Squeeze-and-excitation (RepVGG-D2se): ``x * sigmoid(conv2(relu(
    conv1(avgpool(x)))))``, laid out as mmpretrain's ``SELayer`` (module
    names and arguments) so its weights load as they are.

    Args:
        channels (int): input and output channels.
        squeeze_channels (int, optional): hidden channels; default
            ``make_divisible(channels // ratio, divisor)``.
        ratio, divisor (int): see ``squeeze_channels``.
        bias (bool | str): of both convs (``'auto'``: with bias).
        act_cfg (tuple[dict]): activations after ``conv1`` and ``conv2``.
    """

    def __init__(self, channels, squeeze_channels=None, ratio=16, divisor=8,
                 bias='auto', conv_cfg=None,
                 act_cfg=(dict(type='ReLU'), dict(type='Sigmoid')),
                 init_cfg=None):
        super().__init__(init_cfg)
        if squeeze_channels is None:
            squeeze_channels = make_divisible(channels // ratio, divisor)
        self.conv1 = ConvModule(channels, squeeze_channels, 1, bias=bias,
                                conv_cfg=conv_cfg, act_cfg=act_cfg[0])
        self.conv2 = ConvModule(squeeze_channels, channels, 1, bias=bias,
                                conv_cfg=conv_cfg, act_cfg=act_cfg[1])

    def forward(self, x):
        return x * self.conv2(self.conv1(F.adaptive_avg_pool2d(x, 1)))


class RepVGGBlock(ReparamBlock):
    """One RepVGG layer: three branches in training, one 3x3 conv deployed.

    Args:
        stride, dilation, groups: of the 3x3 conv (the 1x1 branch shares
            stride and groups; dilation does not change a 1x1 conv).
        padding (int, optional): of the 3x3 conv; must equal ``dilation``
            (the default), the only value for which the three branches'
            outputs line up.
        padding_mode (str): only ``'zeros'`` (zero padding is what lets the
            1x1 kernel be padded into the 3x3 one).
        se_cfg (dict, optional): :class:`SELayer` arguments, e.g.
            ``dict(ratio=16, divisor=1)``.
        conv_cfg (dict, optional): ``None`` or a plain conv type.
        norm_cfg (dict): a BatchNorm type (BN, SyncBN), which fusion folds.
        act_cfg (dict): the activation after the branches.
        with_cp (bool): gradient checkpointing, to save memory.
        deploy (bool): build the fused form directly.
    """

    branch_names = ('branch_3x3', 'branch_1x1', 'branch_norm')
    fused_name = 'branch_reparam'
    argument_error = RepVGGArgumentError

    def __init__(self, in_channels, out_channels, stride=1, padding=None,
                 dilation=1, groups=1, padding_mode='zeros', se_cfg=None,
                 with_cp=False, conv_cfg=None, norm_cfg=dict(type='BN'),
                 act_cfg=dict(type='ReLU', inplace=True), deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg)
        padding = dilation if padding is None else padding
        self._check_arguments(in_channels, out_channels, padding, dilation,
                              groups, padding_mode, se_cfg, conv_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.se_cfg = groups, se_cfg
        self.conv_cfg, self.norm_cfg = conv_cfg, norm_cfg
        self.act_cfg = act_cfg
        self.with_cp, self.deploy = with_cp, deploy
        self.geometry = ConvGeometry(in_channels, out_channels, 3, stride,
                                     padding, dilation, groups)
        if deploy:
            self.branch_reparam = self._fused_conv()
        else:
            if in_channels == out_channels and stride == 1:
                self.branch_norm = build_norm_layer(norm_cfg, in_channels)[1]
                self._check_norm(self.branch_norm)
            else:
                self.branch_norm = None
            self.branch_3x3 = self._conv_bn(3)
            self.branch_1x1 = self._conv_bn(1)
            self._check_norm(self.branch_3x3.norm)
        self.se_layer = (SELayer(out_channels, conv_cfg=conv_cfg, **se_cfg)
                         if se_cfg is not None else None)
        self.act = build_activation_layer(act_cfg)

    @staticmethod
    def _check_arguments(in_channels, out_channels, padding, dilation,
                         groups, padding_mode, se_cfg, conv_cfg):
        if padding != dilation:
            raise RepVGGArgumentError(
                f'RepVGGBlock: padding {padding} must equal dilation '
                f'{dilation}: only then do the 3x3, 1x1 and identity '
                'branches give outputs of one size (omit padding)')
        if padding_mode != 'zeros':
            raise RepVGGArgumentError(
                f"RepVGGBlock: padding_mode {padding_mode!r} is out of scope:"
                " fusing the 1x1 branch into the 3x3 conv needs 'zeros'")
        if in_channels % groups or out_channels % groups:
            raise RepVGGArgumentError(
                f'RepVGGBlock: groups {groups} must divide the input and '
                f'output channels ({in_channels} -> {out_channels})')
        if se_cfg is not None and not isinstance(se_cfg, dict):
            raise RepVGGArgumentError(
                f'RepVGGBlock: se_cfg must be a dict or None, got {se_cfg!r}')
        check_conv_cfg(conv_cfg)

    def _conv_bn(self, kernel_size):
        return ConvModule(
            self.in_channels, self.out_channels, kernel_size,
            stride=self.stride, padding=self.dilation * (kernel_size // 2),
            dilation=self.dilation, groups=self.groups, bias=False,
            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=None)

    def _forward(self, x):
        out = self.forward_branches(x)
        if self.se_layer is not None:
            out = self.se_layer(out)
        return out

    @contextlib.contextmanager
    def _keep_norm_stats(self):
        """Undo the BN running-stat updates of checkpointing's recompute pass,
        which would otherwise count every training batch twice."""
        buffers = [buf for m in self.modules() if isinstance(m, _BatchNorm)
                   for buf in m.buffers()]
        saved = [buf.clone() for buf in buffers]
        try:  # the recompute pass is left by an exception when it stops early
            yield
        finally:
            for buf, value in zip(buffers, saved):
                buf.copy_(value)

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(
                self._forward, x, use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(),
                                    self._keep_norm_stats()))
        else:
            out = self._forward(x)
        return self.act(out)
