"""RepVGG backbones (Ding et al., CVPR 2021) for MMSegmentation.

Training form: every block is ``3x3 conv+BN + 1x1 conv+BN (+ identity BN)``
followed by ReLU. :meth:`RepVGG.switch_to_deploy` folds the branches into one
3x3 conv with bias per block, exactly (the fusion lives in
:meth:`RepVGGBlock.fused_kernel_and_bias`, next to the branches it fuses).

Module names follow mmpretrain's RepVGG (``stem``, ``stage_1`` ..
``stage_4``; ``branch_3x3``, ``branch_1x1``, ``branch_norm``,
``branch_reparam``); mmpretrain checkpoints (whose branch BNs are ``norm``)
and official ones load through a key rename (:mod:`..checkpoints`).
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_conv_layer, build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.registry import MODELS
from ..checkpoints.strict import load_pretrained
from ..repvgg_archs import ARCH_SETTINGS, resolve_arch
from ...utils.errors import InvalidArgument

class SEBlock(nn.Module):
    """Squeeze-and-excitation after the fused conv (RepVGG-D2se)."""

    def __init__(self, channels, ratio=16):
        super().__init__()
        hidden = max(channels // ratio, 1)
        self.down = nn.Conv2d(channels, hidden, 1, bias=True)
        self.up = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = torch.sigmoid(self.up(F.relu(self.down(scale))))
        return x * scale


class RepVGGBlock(BaseModule):
    """One RepVGG layer: three branches in training, one 3x3 conv deployed.

    Args:
        stride, dilation, groups: of the 3x3 conv (the 1x1 branch shares
            stride and groups; dilation does not change a 1x1 conv).
        deploy: build the fused form directly.
    """

    def __init__(self, in_channels, out_channels, stride=1, dilation=1,
                 groups=1, se_cfg=None, norm_cfg=dict(type='BN'),
                 with_cp=False, deploy=False, init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.norm_cfg, self.with_cp, self.deploy = norm_cfg, with_cp, deploy
        if deploy:
            self.branch_reparam = self._conv(3, dilation, bias=True)
        else:
            if in_channels == out_channels and stride == 1:
                self.branch_norm = build_norm_layer(norm_cfg, in_channels)[1]
            else:
                self.branch_norm = None
            self.branch_3x3 = self._conv_bn(3, dilation)
            self.branch_1x1 = self._conv_bn(1, 1)
        self.se = SEBlock(out_channels, se_cfg['ratio']) if se_cfg else None
        self.act = nn.ReLU(inplace=True)

    def _conv(self, kernel_size, dilation, bias):
        return build_conv_layer(
            None, self.in_channels, self.out_channels, kernel_size,
            stride=self.stride, padding=dilation * (kernel_size // 2),
            dilation=dilation, groups=self.groups, bias=bias)

    def _conv_bn(self, kernel_size, dilation):
        return ConvModule(
            self.in_channels, self.out_channels, kernel_size,
            stride=self.stride, padding=dilation * (kernel_size // 2),
            dilation=dilation, groups=self.groups, bias=False,
            norm_cfg=self.norm_cfg, act_cfg=None)

    def _forward(self, x):
        if self.deploy:
            out = self.branch_reparam(x)
        else:
            out = self.branch_3x3(x) + self.branch_1x1(x)
            if self.branch_norm is not None:
                out = out + self.branch_norm(x)
        if self.se is not None:
            out = self.se(out)
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

    # ---- re-parameterization -------------------------------------------
    @staticmethod
    def _fold_bn(kernel, norm):
        """Fold an eval-mode BN (or SyncBN) into the preceding kernel."""
        std = (norm.running_var + norm.eps).sqrt()
        scale = norm.weight / std
        return (kernel * scale.reshape(-1, 1, 1, 1),
                norm.bias - norm.running_mean * scale)

    def _identity_kernel(self, reference):
        """The identity as a 3x3 (grouped) conv: 1 at the centre of its own
        channel; with groups, channel ``i`` sits at ``i % (C / groups)``."""
        per_group = self.in_channels // self.groups
        kernel = reference.new_zeros(self.in_channels, per_group, 3, 3)
        idx = torch.arange(self.in_channels, device=reference.device)
        kernel[idx, idx % per_group, 1, 1] = 1
        return kernel

    @torch.no_grad()
    def fused_kernel_and_bias(self):
        """The single 3x3 kernel and bias equal to the three branches."""
        kernel, bias = self._fold_bn(self.branch_3x3.conv.weight,
                                     self.branch_3x3.bn)
        kernel_1x1, bias_1x1 = self._fold_bn(self.branch_1x1.conv.weight,
                                             self.branch_1x1.bn)
        kernel = kernel + F.pad(kernel_1x1, [1, 1, 1, 1])
        bias = bias + bias_1x1
        if self.branch_norm is not None:
            kernel_id, bias_id = self._fold_bn(
                self._identity_kernel(kernel), self.branch_norm)
            kernel, bias = kernel + kernel_id, bias + bias_id
        return kernel, bias

    def switch_to_deploy(self):
        """Fuse the branches into ``branch_reparam`` in place."""
        if self.deploy:
            return
        kernel, bias = self.fused_kernel_and_bias()
        self.branch_reparam = self._conv(3, self.dilation, bias=True).to(
            kernel.device, kernel.dtype)
        self.branch_reparam.weight.data.copy_(kernel)
        self.branch_reparam.bias.data.copy_(bias)
        for name in ('branch_3x3', 'branch_1x1', 'branch_norm'):
            delattr(self, name)
        self.deploy = True


@MODELS.register_module()
class RepVGG(BaseModule):
    """RepVGG backbone.

    Args:
        arch (str | dict): one of :data:`ARCH_SETTINGS` or a dict with
            ``num_blocks`` (4 stages), ``width_factor`` (4 multipliers) and
            optional ``group_layer_map`` / ``se_cfg``.
        in_channels (int): input channels.
        base_channels (int): widths are ``base * 2**i * width_factor[i]``.
        out_indices (Sequence[int]): stages (0-3) whose outputs are returned.
        strides (Sequence[int]): stride of the first layer of each stage.
        dilations (Sequence[int]): dilation of each stage's 3x3 convs.
        num_dilated_layers (int, optional): dilate only the last N 3x3 layers
            of the network (the paper's "fast" PSPNet uses 5: the last 4 of
            stage 3 and the one of stage 4); the others keep dilation 1.
            ``None`` dilates every layer of a dilated stage.
        frozen_stages (int): freeze the stem (0) and stages up to this one
            (1-4); -1 freezes nothing.
        norm_cfg (dict): e.g. ``dict(type='SyncBN')`` for multi-GPU training.
        norm_eval (bool): keep BN layers in eval mode while training.
        with_cp (bool): gradient checkpointing, to save memory.
        deploy (bool): build the fused form (one 3x3 conv per block).
        init_cfg (dict): ``dict(type='Pretrained', checkpoint=PATH)`` loads
            an official RepVGG, mmpretrain or repvgg-seg checkpoint, training
            or deploy form (see :mod:`..checkpoints`).
    """

    arch_settings = ARCH_SETTINGS

    def __init__(self, arch='A0', in_channels=3, base_channels=64,
                 out_indices=(0, 1, 2, 3), strides=(2, 2, 2, 2),
                 dilations=(1, 1, 1, 1), num_dilated_layers=None,
                 frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                 norm_eval=False, with_cp=False, deploy=False, init_cfg=None):
        super().__init__(init_cfg)
        # Kept so a training-form twin can be built to fuse pretrained
        # training-form weights into a deploy-form model.
        self.build_args = dict(
            arch=arch, in_channels=in_channels, base_channels=base_channels,
            out_indices=out_indices, strides=strides, dilations=dilations,
            num_dilated_layers=num_dilated_layers, norm_cfg=norm_cfg)
        self.arch_name = arch if isinstance(arch, str) else 'custom'
        arch = resolve_arch(arch, self.arch_settings)
        num_stages = len(arch['num_blocks'])
        for name, value in (('strides', strides), ('dilations', dilations)):
            if len(value) != num_stages:
                raise InvalidArgument(f'RepVGG: {name} needs {num_stages} values '
                                 f'(one per stage), got {tuple(value)}')
        if not all(0 <= i < num_stages for i in out_indices):
            raise InvalidArgument(f'RepVGG: out_indices must lie in '
                             f'0..{num_stages - 1}, got {tuple(out_indices)}')
        self.arch = arch
        self.out_indices = tuple(out_indices)
        self.strides, self.dilations = tuple(strides), tuple(dilations)
        self.num_dilated_layers = num_dilated_layers
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.deploy = deploy
        block_cfg = dict(norm_cfg=norm_cfg, with_cp=with_cp, deploy=deploy,
                         se_cfg=arch['se_cfg'])

        channels = min(64, int(base_channels * arch['width_factor'][0]))
        self.stem = RepVGGBlock(in_channels, channels, stride=2, **block_cfg)
        layer_dilations = self._layer_dilations()
        layer_idx = 1
        self.stage_names, self.out_channels = [], []
        for i, num_blocks in enumerate(arch['num_blocks']):
            out_channels = int(base_channels * 2**i * arch['width_factor'][i])
            blocks = []
            for j in range(num_blocks):
                blocks.append(RepVGGBlock(
                    channels, out_channels,
                    stride=strides[i] if j == 0 else 1,
                    dilation=layer_dilations[layer_idx - 1],
                    groups=arch['group_layer_map'].get(layer_idx, 1),
                    **block_cfg))
                channels = out_channels
                layer_idx += 1
            name = f'stage_{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self.out_channels.append(out_channels)
        self._freeze_stages()

    def _layer_dilations(self):
        """Dilation of each 3x3 layer after the stem, honouring
        ``num_dilated_layers``."""
        per_layer = [d for d, n in zip(self.dilations, self.arch['num_blocks'])
                     for _ in range(n)]
        if self.num_dilated_layers is not None:
            keep_from = len(per_layer) - self.num_dilated_layers
            per_layer = [d if i >= keep_from else 1
                         for i, d in enumerate(per_layer)]
        return per_layer

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        modules = [self.stem] + [getattr(self, n) for n in self.stage_names]
        for module in modules[:self.frozen_stages + 1]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def switch_to_deploy(self):
        """Fuse every block into one 3x3 conv (exact in eval mode)."""
        for m in self.modules():
            if isinstance(m, RepVGGBlock):
                m.switch_to_deploy()
        self.deploy = True

    def init_weights(self):
        if (self.init_cfg is not None
                and self.init_cfg.get('type') == 'Pretrained'):
            load_pretrained(self, self.init_cfg['checkpoint'],
                            prefix=self.init_cfg.get('prefix'))
            self._is_init = True
        else:
            super().init_weights()
