"""RDRNet (Yang et al., "Reparameterizable Dual-Resolution Network for
Real-time Semantic Segmentation", arXiv 2406.12496), the backbone of the
authors' MMSegmentation fork (gyyang23/RDRNet).

DDRNet's two branches and bilateral fusions, with every residual block of
stages 1-5 replaced by a re-parameterizable block (:class:`RB`) and PIDNet's
PAPPM by the :class:`RPPM`, whose grouped 3x3 refinement trains as two
parallel conv+BN branches (:class:`RepParallel`). Both fuse into one conv
each (:meth:`RDRNet.switch_to_deploy`, or ``deploy=True`` to build the fused
form); the fusion rules are the shared ones of :mod:`.reparam`. Module names
and arguments are the authors', so their checkpoints (training or fused
form) load as they are. The forward is MMSeg's DDRNet's (eval: the output;
training: ``(auxiliary feature, output)``), so MMSeg's ``DDRHead`` with its
two ``OhemCrossEntropy`` losses drives it unchanged.
"""
import math

import torch.nn as nn
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.models.utils import PAPPM, Bottleneck, resize
from mmseg.registry import MODELS
from ...utils.errors import InvalidArgument
from .reparam import Block1x1, ConvGeometry, ReparamBlock

#: RDRNet's BN (also the default of its blocks): momentum 0.03, eps 1e-3.
RDRNET_NORM = dict(type='BN', requires_grad=True, momentum=0.03, eps=0.001)


class RB(ReparamBlock):
    """RDRNet's re-parameterizable block: 3x3 conv+BN, the 1x1 chain
    (:class:`~.reparam.Block1x1`) and, when the shape allows, an identity BN,
    summed, then ReLU (or nothing: ``act=False``). Fused: one 3x3 conv with
    bias, ``reparam_3x3``."""

    branch_names = ('path_3x3', 'path_1x1', 'path_residual')
    fused_name = 'reparam_3x3'

    def __init__(self, in_channels, out_channels, stride=1,
                 norm_cfg=RDRNET_NORM, act=True, deploy=False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv_cfg, self.norm_cfg, self.deploy = None, norm_cfg, deploy
        self.geometry = ConvGeometry(in_channels, out_channels, 3, stride)
        self.relu = nn.ReLU(inplace=True) if act else nn.Identity()
        if deploy:
            self.reparam_3x3 = self._fused_conv()
            return
        self.path_residual = (build_norm_layer(norm_cfg, in_channels)[1]
                              if in_channels == out_channels and stride == 1
                              else None)
        self.path_3x3 = ConvModule(in_channels, out_channels, 3, stride, 1,
                                   bias=False, norm_cfg=norm_cfg,
                                   act_cfg=None)
        self.path_1x1 = Block1x1(in_channels, out_channels, stride, norm_cfg)
        for norm in (self.path_3x3.norm, self.path_residual):
            if norm is not None:
                self._check_norm(norm)

    def forward(self, x):
        return self.relu(self.forward_branches(x))


class RepParallel(ReparamBlock):
    """The RPPM's refinement: BN-ReLU, then two grouped 3x3 conv+BN
    branches summed (no activation). Fused: one grouped 3x3 conv with bias,
    ``reparam_parallel``; the BN-ReLU before it stays."""

    branch_names = ('parallel1', 'parallel2')
    fused_name = 'reparam_parallel'

    def __init__(self, in_channels, out_channels, groups=1,
                 norm_cfg=RDRNET_NORM, act_cfg=dict(type='ReLU', inplace=True),
                 deploy=False):
        super().__init__()
        self.conv_cfg, self.norm_cfg, self.deploy = None, norm_cfg, deploy
        self.geometry = ConvGeometry(in_channels, out_channels, 3,
                                     groups=groups)
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.relu = build_activation_layer(act_cfg)
        if deploy:
            self.reparam_parallel = self._fused_conv()
            return
        for name in self.branch_names:
            setattr(self, name, ConvModule(
                in_channels, out_channels, 3, padding=1, groups=groups,
                bias=False, norm_cfg=norm_cfg, act_cfg=None))
            self._check_norm(getattr(self, name).norm)

    def forward(self, x):
        return self.forward_branches(self.relu(self.norm(x)))


class RPPM(PAPPM):
    """PIDNet's parallel pyramid pooling (MMSeg's ``PAPPM``: same scales,
    pre-activation 1x1 convs, compression, shortcut and forward) with its
    grouped 3x3 refinement replaced by :class:`RepParallel`."""

    def __init__(self, in_channels, branch_channels, out_channels,
                 num_scales, kernel_sizes=(5, 9, 17), strides=(2, 4, 8),
                 paddings=(2, 4, 8), norm_cfg=RDRNET_NORM,
                 act_cfg=dict(type='ReLU', inplace=True),
                 conv_cfg=dict(order=('norm', 'act', 'conv'), bias=False),
                 upsample_mode='bilinear', deploy=False):
        super().__init__(in_channels, branch_channels, out_channels,
                         num_scales, list(kernel_sizes), list(strides),
                         list(paddings), norm_cfg, act_cfg, conv_cfg,
                         upsample_mode)
        channels = branch_channels * (num_scales - 1)
        self.processes = RepParallel(channels, channels, num_scales - 1,
                                     norm_cfg, act_cfg, deploy)

    def switch_to_deploy(self):
        self.processes.switch_to_deploy()


def _check_blocks(num_blocks_per_stage):
    """``[n2, n3, [n4s, n4d], [n5s, n5d], [n6s, n6d]]``: every branch
    stage needs a block (its last one carries no ReLU)."""
    try:
        n2, n3, *pairs = num_blocks_per_stage
        counts = [int(n2), int(n3)] + [int(n) for pair in pairs
                                       for n in pair]
        valid = (len(pairs) == 3 and all(len(p) == 2 for p in pairs)
                 and min(counts[:2]) >= 0 and min(counts[2:]) >= 1)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InvalidArgument(
            'RDRNet: num_blocks_per_stage must be [n2, n3, [n4s, n4d], '
            '[n5s, n5d], [n6s, n6d]] with n2, n3 >= 0 and the others >= 1, '
            'e.g. [4, 3, [5, 4], [5, 4], [1, 1]]; got '
            f'{num_blocks_per_stage!r}')


@MODELS.register_module()
class RDRNet(BaseModule):
    """RDRNet backbone (the authors' arguments and module names).

    Args:
        in_channels (int): input channels.
        channels (int): base width C (32: S-Simple and S, 64: M and L).
        ppm_channels (int): branch width of the RPPM.
        num_blocks_per_stage (list): ``[n2, n3, [n4s, n4d], [n5s, n5d],
            [n6s, n6d]]``: stride-1 RBs of stages 2 and 3, of each branch
            (semantic, detail) in stages 4 and 5, Bottlenecks of each branch
            in stage 6. S/M: ``[4, 3, [5, 4], [5, 4], [1, 1]]``,
            L: ``[6, 5, [7, 6], [7, 6], [2, 2]]``.
        align_corners (bool): of the bilinear upsampling.
        norm_cfg (dict): a BatchNorm type (the RBs and the RPPM fold it).
        act_cfg (dict): the activation of the stage-6 Bottlenecks and
            ``down_2``.
        init_cfg (dict, optional): MMEngine initialisation; without it
            Kaiming-normal convs and BN 1/0, as the authors'.
        deploy (bool): build the fused form (one conv per RB, one grouped
            conv in the RPPM), which fused checkpoints load into.
    """

    def __init__(self, in_channels=3, channels=32, ppm_channels=128,
                 num_blocks_per_stage=(4, 3, (5, 4), (5, 4), (1, 1)),
                 align_corners=False, norm_cfg=RDRNET_NORM,
                 act_cfg=dict(type='ReLU', inplace=True), init_cfg=None,
                 deploy=False):
        super().__init__(init_cfg)
        _check_blocks(num_blocks_per_stage)
        self.in_channels, self.ppm_channels = in_channels, ppm_channels
        self.num_blocks_per_stage = num_blocks_per_stage
        self.norm_cfg, self.act_cfg = norm_cfg, act_cfg
        self.align_corners, self.deploy = align_corners, deploy
        n2, n3, (n4s, n4d), (n5s, n5d), (n6s, n6d) = num_blocks_per_stage
        c = channels

        # stages 1-3, shared
        self.stem = nn.Sequential(
            self._rb(in_channels, c, 2),
            self._rb(c, c, 2), *[self._rb(c, c) for _ in range(n2)],
            self._rb(c, 2 * c, 2), *[self._rb(2 * c, 2 * c)
                                     for _ in range(n3)])
        self.relu = nn.ReLU()

        # low-resolution (semantic) branch: stages 4-6
        self.semantic_branch_layers = nn.ModuleList([
            self._rb_stage(2 * c, 4 * c, n4s, stride=2),
            self._rb_stage(4 * c, 8 * c, n5s, stride=2),
            nn.Sequential(self._bottlenecks(8 * c, 8 * c, n6s, stride=2)),
        ])
        # high-resolution (detail) branch at 1/8: stages 4-6
        self.detail_branch_layers = nn.ModuleList([
            self._rb_stage(2 * c, 2 * c, n4d),
            self._rb_stage(2 * c, 2 * c, n5d),
            self._bottlenecks(2 * c, 2 * c, n6d),
        ])

        # bilateral fusion (DDRNet's)
        self.compression_1 = self._conv_bn(4 * c, 2 * c, 1)
        self.down_1 = self._conv_bn(2 * c, 4 * c, 3, stride=2)
        self.compression_2 = self._conv_bn(8 * c, 2 * c, 1)
        self.down_2 = nn.Sequential(
            self._conv_bn(2 * c, 4 * c, 3, stride=2, act_cfg=act_cfg),
            self._conv_bn(4 * c, 8 * c, 3, stride=2))

        self.spp = RPPM(16 * c, ppm_channels, 4 * c, num_scales=5,
                        norm_cfg=norm_cfg, deploy=deploy)
        self._kaiming_init()

    def _rb(self, in_channels, out_channels, stride=1, act=True):
        return RB(in_channels, out_channels, stride, self.norm_cfg, act,
                  self.deploy)

    def _rb_stage(self, in_channels, out_channels, num_blocks, stride=1):
        """Stages 4-5 of a branch: an optional stride-2 RB, then
        ``num_blocks`` stride-1 RBs, the last one without ReLU (the sum
        of the fusion comes before it)."""
        first = [self._rb(in_channels, out_channels, 2)] if stride == 2 \
            else []
        return nn.Sequential(
            *first, *[self._rb(out_channels, out_channels)
                      for _ in range(num_blocks - 1)],
            self._rb(out_channels, out_channels, act=False))

    def _conv_bn(self, in_channels, out_channels, kernel_size, stride=1,
                 act_cfg=None):
        return ConvModule(in_channels, out_channels, kernel_size, stride,
                          kernel_size // 2, norm_cfg=self.norm_cfg,
                          act_cfg=act_cfg)

    def _bottlenecks(self, inplanes, planes, num_blocks, stride=1):
        """Stage 6 of a branch: MMSeg's Bottleneck (expansion 2), the first
        with a projection shortcut; none ends with an activation."""
        out_channels = planes * Bottleneck.expansion
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, out_channels, 1, stride, bias=False),
            build_norm_layer(self.norm_cfg, out_channels)[1])
        layers = [Bottleneck(inplanes, planes, stride, downsample,
                             norm_cfg=self.norm_cfg)]
        for i in range(1, num_blocks):
            layers.append(Bottleneck(
                out_channels, planes, norm_cfg=self.norm_cfg,
                act_cfg_out=None if i == num_blocks - 1 else self.act_cfg))
        return nn.Sequential(*layers)

    def _kaiming_init(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out',
                                        nonlinearity='relu')
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, _BatchNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _upsample(self, x, size):
        return resize(x, size=size, mode='bilinear',
                      align_corners=self.align_corners)

    def forward(self, x):
        """Eval: the fused 1/8-scale features; training: ``(auxiliary
        feature after the first fusion, features)`` for ``DDRHead``."""
        out_size = (math.ceil(x.shape[-2] / 8), math.ceil(x.shape[-1] / 8))
        x = self.stem(x)

        # stage 4 and the first bilateral fusion
        x_s = self.semantic_branch_layers[0](x)
        x_d = self.detail_branch_layers[0](x)
        comp = self.compression_1(self.relu(x_s))
        x_s = x_s + self.down_1(self.relu(x_d))
        x_d = x_d + self._upsample(comp, out_size)
        if self.training:
            aux_feature = x_d.clone()

        # stage 5 and the second fusion
        x_s = self.semantic_branch_layers[1](self.relu(x_s))
        x_d = self.detail_branch_layers[1](self.relu(x_d))
        comp = self.compression_2(self.relu(x_s))
        x_s = x_s + self.down_2(self.relu(x_d))
        x_d = x_d + self._upsample(comp, out_size)

        # stage 6, pyramid pooling on the semantic branch
        x_d = self.detail_branch_layers[2](self.relu(x_d))
        x_s = self.spp(self.semantic_branch_layers[2](self.relu(x_s)))
        out = x_d + self._upsample(x_s, out_size)
        return (aux_feature, out) if self.training else out

    def switch_to_deploy(self):
        """Fuse every RB and the RPPM's refinement (exact in eval mode);
        the result is what ``deploy=True`` builds."""
        for m in [m for m in self.modules() if isinstance(m, ReparamBlock)]:
            m.switch_to_deploy()
        self.deploy = True
