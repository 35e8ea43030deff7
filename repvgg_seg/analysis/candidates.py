"""Which models a benchmark measures and how they are built: CONFIG (or its
``--sweep`` archs), MMSeg's configs and our RDRNet ones by short name,
ImageNet classifiers;
random weights with calibrated BN statistics unless a checkpoint is given.
"""
import copy
import importlib.util
import os.path as osp
import re

import torch
from mmengine.model import revert_sync_batchnorm
from torch.nn.modules.batchnorm import _BatchNorm

from mmseg.registry import MODELS
from ..deploy import load_trained_model
from ..models import RepVGG
from ..models.backbones import ReparamBlock
from ..utils.config import read_config
from ..utils.errors import InvalidArgument

#: This repository's configs (a source checkout: they are not installed).
CONFIG_DIR = osp.normpath(osp.join(osp.dirname(osp.abspath(__file__)), '..',
                                   '..', 'configs'))
#: ``--baseline`` short names -> configs: MMSeg's own Cityscapes configs
#: (``mmseg::``; the real-time networks use the ImageNet-pretrained recipe
#: where MMSeg has one: the structure is the same, only the published mIoU
#: differs), then RDRNet, which MMSeg does not ship, from ``configs/``.
BASELINES = {
    'pspnet_r18-d8':
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'pspnet_r50-d8':
    'mmseg::pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py',
    'pspnet_r101-d8':
    'mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    'pidnet-s': 'mmseg::pidnet/pidnet-s_2xb6-120k_1024x1024-cityscapes.py',
    'pidnet-m': 'mmseg::pidnet/pidnet-m_2xb6-120k_1024x1024-cityscapes.py',
    'pidnet-l': 'mmseg::pidnet/pidnet-l_2xb6-120k_1024x1024-cityscapes.py',
    'ddrnet-23-slim': 'mmseg::ddrnet/'
    'ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py',
    'ddrnet-23':
    'mmseg::ddrnet/ddrnet_23_in1k-pre_2xb6-120k_cityscapes-1024x1024.py',
    'bisenetv1': 'mmseg::bisenetv1/bisenetv1_r18-d32-in1k-pre_4xb8-160k_'
    'cityscapes-1024x1024.py',
    'bisenetv2':
    'mmseg::bisenetv2/bisenetv2_fcn_4xb8-160k_cityscapes-1024x1024.py',
    'stdc1': 'mmseg::stdc/stdc1_in1k-pre_4xb12-80k_cityscapes-512x1024.py',
    'stdc2': 'mmseg::stdc/stdc2_in1k-pre_4xb12-80k_cityscapes-512x1024.py',
    **{name: osp.join(CONFIG_DIR,
                      f'{name}_2xb6-120k_cityscapes-1024x1024.py')
       for name in ('rdrnet-s-simple', 'rdrnet-s', 'rdrnet-m', 'rdrnet-l')},
}
RESNET_DEPTHS = (18, 50, 101)


def baseline_config(name):
    """The config path of a ``--baseline`` (a short name or a path)."""
    if name.endswith('.py'):
        return name
    if name not in BASELINES:
        raise InvalidArgument(f'unknown baseline {name!r}: give a config path '
                              f'or one of {", ".join(BASELINES)}')
    return BASELINES[name]


def config_name(path):
    """``configs/x/pspnet_r50.py`` -> ``pspnet_r50`` (the key of
    :data:`~.published.PUBLISHED_MIOU`)."""
    return osp.splitext(osp.basename(path))[0]


def with_arch(cfg, arch):
    """``cfg`` with another RepVGG arch, its heads' input channels matched
    (decode head: last stage, auxiliary head: the one before)."""
    cfg = copy.deepcopy(cfg)
    with torch.device('meta'):
        channels = RepVGG(arch=arch).out_channels
    cfg.model.backbone.arch = arch
    cfg.model.decode_head.in_channels = channels[-1]
    if cfg.model.get('auxiliary_head'):
        cfg.model.auxiliary_head.in_channels = channels[-2]
    return cfg


def _without_pretrained(node):
    """Every ``init_cfg`` and ``pretrained`` of a model config off, nested
    ones too (a BiSeNet's or STDC's inner backbone)."""
    if isinstance(node, dict):
        for key in ('init_cfg', 'pretrained'):
            if key in node:
                node[key] = None
        for value in node.values():
            _without_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _without_pretrained(item)


def untrained(cfg):
    """No pretrained weights are read: speed does not depend on them."""
    cfg = copy.deepcopy(cfg)
    _without_pretrained(cfg.model)
    return cfg


#: Backbones with a training and a fused form -> their family.
REPARAMETERIZED_FAMILIES = {'RepVGG': 'repvgg', 'RDRNet': 'rdrnet'}


def family(cfg):
    """``'repvgg'``, ``'rdrnet'`` (both re-parameterized: measured in
    training and fused form) or ``'baseline'``."""
    return REPARAMETERIZED_FAMILIES.get(cfg.model.backbone.type, 'baseline')


def segmentor_candidates(args):
    """``dict(name, family, config_name, cfg, checkpoint)`` of every model
    to measure: CONFIG (or its ``--sweep`` archs), then the ``--baseline``
    ones. Every config is read before anything is measured."""
    stem = config_name(args.config)
    cfg = read_config(args.config)
    if args.sweep:
        found = [(re.sub(r'repvgg_[a-z0-9]+', f'repvgg_{arch.lower()}',
                         stem), with_arch(cfg, arch)) for arch in args.sweep]
    else:
        found = [(stem, cfg)]
    candidates = [dict(name=name, family=family(c), config_name=name, cfg=c,
                       checkpoint=None if args.sweep else args.checkpoint)
                  for name, c in found]
    for base in args.baseline:
        path = baseline_config(base)
        cfg = read_config(path)
        name = base if base in BASELINES else \
            config_name(path).split('_4xb2')[0]
        if path.startswith('mmseg::'):
            name += ' (mmseg)'
        candidates.append(dict(name=name, family=family(cfg),
                               config_name=config_name(path), cfg=cfg,
                               checkpoint=None))
    return candidates


def has_norms(model):
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def has_training_form(model):
    """Whether ``model`` still has branches to fuse (RepVGG, RDRNet)."""
    return any(isinstance(m, ReparamBlock) and not m.deploy
               for m in model.modules())


def calibration_images(shape, seed=0):
    """Random normalised images whose brightness and contrast vary per image
    and channel. With plain noise every image has the same means, so a BN
    after a global pooling (PSP's 1x1 bin) measures a variance of ~0 and
    scales by ~1/sqrt(eps): fp16 then overflows."""
    gen = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    return (torch.randn(shape, generator=gen) *
            (0.5 + torch.rand(n, c, 1, 1, generator=gen)) +
            0.5 * torch.randn(n, c, 1, 1, generator=gen))


@torch.no_grad()
def randomize_norms(model, forward, inputs, seed=0):
    """Random BN affine parameters, and running statistics measured on
    ``inputs`` as training leaves them: fusion then folds non-trivial
    statistics, and activations keep a trained network's scale (which
    fp16 needs)."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for m in norms:
        m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
        m.reset_running_stats()
        m.momentum = None  # running stats = plain average of the batches
    model.train()
    forward(model, inputs)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def tensor_forward(model, inputs):
    return model(inputs, mode='tensor')


def build_segmentor(cfg, checkpoint, device, calibration_shape):
    """The segmentor on ``device`` in eval mode, BN (not SyncBN); without a
    checkpoint random, BN statistics measured (:func:`randomize_norms`)."""
    model = load_trained_model(untrained(cfg), checkpoint)
    model = revert_sync_batchnorm(model).to(device)
    if checkpoint is None:
        randomize_norms(model, tensor_forward,
                        calibration_images(calibration_shape).to(device))
    return model


def repvgg_classifier(arch, deploy=False, num_classes=1000):
    """The ImageNet classifier the paper counts and times: RepVGG + global
    pool + fc, built from the registry (built on the meta device when
    called under ``torch.device('meta')``)."""
    with torch.device('meta'):
        channels = RepVGG(arch=arch).out_channels[-1]
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='RepVGG', arch=arch, out_indices=(3, ),
                      deploy=deploy),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=channels)))


def has_torchvision():
    return importlib.util.find_spec('torchvision') is not None


def resnet_classifier(depth):
    """ResNet-``depth`` ImageNet classifier: torchvision's if installed,
    else MMSeg's ResNet + pool + fc (the same network)."""
    if has_torchvision():
        import torchvision
        return getattr(torchvision.models, f'resnet{depth}')()
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=depth, out_indices=(3, )),
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=512 * (1 if depth < 50 else 4))))
