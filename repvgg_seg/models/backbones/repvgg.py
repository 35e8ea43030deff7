"""RepVGG backbones (Ding et al., CVPR 2021) for MMSegmentation.

A drop-in for mmpretrain's ``RepVGG``: the same arguments, arch names,
attributes (``stem``, ``stages``, ``stage_1`` .. ``stage_4``) and module
names, so mmpretrain configs and checkpoints work as they are; plus what
segmentation needs (``num_dilated_layers``, loading official and
mmpretrain checkpoints in either form through ``init_cfg``). The defaults
that differ (``out_indices``, ``init_cfg``) are listed in the README.
The blocks and their exact fusion are in :mod:`.repvgg_blocks`.
"""
import torch.nn as nn
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.registry import MODELS
from ..checkpoints.strict import load_pretrained
from ..repvgg_archs import (ARCH_SETTINGS, RepVGGArgumentError, resolve_arch,
                            stem_width)
from .repvgg_blocks import RepVGGBlock


@MODELS.register_module()
class RepVGG(BaseModule):
    """RepVGG backbone.

    Args:
        arch (str | dict): one of :data:`ARCH_SETTINGS` or a dict with
            ``num_blocks`` and ``width_factor`` (one value per stage) and
            optional ``group_layer_map`` (``{layer: groups}``, layers
            1..N after the stem), ``se_cfg`` and ``stem_channels`` (default
            64; the stem is never wider than the first stage).
        in_channels (int): input channels.
        base_channels (int): widths are ``base * 2**i * width_factor[i]``.
        out_indices (Sequence[int]): stages whose outputs are returned
            (default all four, for decode heads; mmpretrain's is ``(3, )``).
        strides (Sequence[int]): stride of the first layer of each stage.
        dilations (Sequence[int]): dilation of each stage's 3x3 convs.
        frozen_stages (int): freeze the stem (0) and stages up to this one
            (1-4); -1 freezes nothing.
        conv_cfg (dict, optional): ``None`` or a plain conv type.
        norm_cfg (dict): e.g. ``dict(type='SyncBN')`` for multi-GPU training.
        act_cfg (dict): activation of every block.
        with_cp (bool): gradient checkpointing, to save memory.
        deploy (bool): build the fused form (one 3x3 conv per block).
        norm_eval (bool): keep BN layers in eval mode while training.
        add_ppf (bool): mmpretrain's YOLOX-PAI pooling block; refused (out
            of scope: its BN layers would stay unfused in deploy form, and a
            segmentation decode head does its own pooling).
        init_cfg (dict): ``dict(type='Pretrained', checkpoint=PATH)`` loads
            an official RepVGG, mmpretrain or repvgg-seg checkpoint, training
            or deploy form (see :mod:`..checkpoints`).
        num_dilated_layers (int, optional): dilate only the last N 3x3 layers
            of the network (the paper's "fast" PSPNet uses 5: the last 4 of
            stage 3 and the one of stage 4); the others keep dilation 1.
            ``None`` dilates every layer of a dilated stage.
    """

    arch_settings = ARCH_SETTINGS

    def __init__(self, arch='A0', in_channels=3, base_channels=64,
                 out_indices=(0, 1, 2, 3), strides=(2, 2, 2, 2),
                 dilations=(1, 1, 1, 1), frozen_stages=-1, conv_cfg=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='ReLU', inplace=True), with_cp=False,
                 deploy=False, norm_eval=False, add_ppf=False, init_cfg=None,
                 num_dilated_layers=None):
        super().__init__(init_cfg)
        if add_ppf:
            raise RepVGGArgumentError(
                'RepVGG: add_ppf=True (the MTSPPF block of YOLOX-PAI) is not '
                'supported: its BN layers would stay unfused in deploy form, '
                'and the decode head pools on its own; use add_ppf=False')
        # Kept so a training-form twin can be built to fuse pretrained
        # training-form weights into a deploy-form model.
        self.build_args = dict(
            arch=arch, in_channels=in_channels, base_channels=base_channels,
            out_indices=out_indices, strides=strides, dilations=dilations,
            conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
            num_dilated_layers=num_dilated_layers)
        self.arch_name = arch if isinstance(arch, str) else 'custom'
        self.arch = resolve_arch(arch, self.arch_settings)
        self._check_stage_arguments(strides, dilations, out_indices,
                                    num_dilated_layers)
        self.in_channels, self.base_channels = in_channels, base_channels
        self.out_indices = tuple(out_indices)
        self.strides, self.dilations = tuple(strides), tuple(dilations)
        self.num_dilated_layers = num_dilated_layers
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.conv_cfg, self.norm_cfg = conv_cfg, norm_cfg
        self.act_cfg = act_cfg
        self.with_cp, self.deploy = with_cp, deploy
        self._build_layers()
        self._freeze_stages()

    def _check_stage_arguments(self, strides, dilations, out_indices,
                               num_dilated_layers):
        num_stages = len(self.arch['num_blocks'])
        for name, value in (('strides', strides), ('dilations', dilations)):
            if len(value) != num_stages:
                raise RepVGGArgumentError(
                    f'RepVGG: {name} needs {num_stages} values (one per '
                    f'stage), got {tuple(value)}')
        if not all(0 <= i < num_stages for i in out_indices):
            raise RepVGGArgumentError(
                f'RepVGG: out_indices must lie in 0..{num_stages - 1}, got '
                f'{tuple(out_indices)}')
        num_layers = sum(self.arch['num_blocks'])
        if num_dilated_layers is not None and not \
                0 <= num_dilated_layers <= num_layers:
            raise RepVGGArgumentError(
                f'RepVGG: num_dilated_layers must lie in 0..{num_layers} '
                f'(the layers after the stem), got {num_dilated_layers}')

    def _build_layers(self):
        block_cfg = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                         act_cfg=self.act_cfg, with_cp=self.with_cp,
                         deploy=self.deploy, se_cfg=self.arch['se_cfg'])
        channels = stem_width(self.arch, self.base_channels)
        self.stem = RepVGGBlock(self.in_channels, channels, stride=2,
                                **block_cfg)
        layer_dilations = self._layer_dilations()
        group_layer_map = self.arch['group_layer_map']
        layer_idx = 1
        self.stages, self.out_channels = [], []
        for i, num_blocks in enumerate(self.arch['num_blocks']):
            out_channels = int(self.base_channels * 2**i *
                               self.arch['width_factor'][i])
            if out_channels < 1:
                raise RepVGGArgumentError(
                    f'RepVGG: stage {i + 1} would have {out_channels} '
                    f'channels (base_channels {self.base_channels} x 2**{i} '
                    f'x width_factor {self.arch["width_factor"][i]})')
            blocks = []
            for j in range(num_blocks):
                blocks.append(RepVGGBlock(
                    channels, out_channels,
                    stride=self.strides[i] if j == 0 else 1,
                    dilation=layer_dilations[layer_idx - 1],
                    groups=group_layer_map.get(layer_idx, 1), **block_cfg))
                channels = out_channels
                layer_idx += 1
            name = f'stage_{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.stages.append(name)
            self.out_channels.append(out_channels)

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
        for i, name in enumerate(self.stages):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        modules = [self.stem] + [getattr(self, n) for n in self.stages]
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
