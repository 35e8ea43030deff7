"""Fuse a trained model for deployment, exactly.

Every re-parameterized backbone takes its own fused form (its
``switch_to_deploy``: one 3x3 conv per RepVGG block; RDRNet's blocks and
pyramid-pooling branches) and every conv+BN pair of the heads becomes one
conv with bias (an eval-mode BN is an affine map). A fused ``ConvModule``
is then the very module that ``ConvModule(norm_cfg=None)`` builds
(``bias='auto'`` gives the conv a bias), with the same
``conv.weight``/``conv.bias`` keys. So :func:`deploy_config` is a plain
MMSeg config, ``backbone.deploy=True`` and ``norm_cfg=None`` in the heads
(kept in a head whose BNs come before its convs, as RDRNet's ``DDRHead``),
and a fused checkpoint loads with ``mmseg.apis.init_model`` or
``tools/test.py`` like any other.
"""
import copy
import inspect
import math
import os
import os.path as osp

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mmseg.registry import MODELS
from ..models import build_model
from ..models.checkpoints import (arch_label, backbone_arch, dataset_meta_of,
                                  is_fused_checkpoint, load_weights,
                                  read_checkpoint)
from ..utils.config import read_config
from ..utils.errors import UserError
from ..utils.files import atomic_output, atomic_torch_save, same_file


class DeployError(UserError, ValueError):
    """A model, checkpoint or output that cannot be fused or deployed."""


#: Fused and original outputs agree to fp32 rounding; more means a bug.
FUSE_TOLERANCE = 1e-4
#: Random input of the fused-vs-original check: small, but the 1/8-scale
#: features still fit PSPNet's 6x6 pooling.
CHECK_INPUT_SHAPE = (1, 3, 128, 256)


def _reparameterize(module):
    """Call ``switch_to_deploy`` on the outermost modules that have it;
    return them (their fused form is their class's own)."""
    if hasattr(module, 'switch_to_deploy'):
        module.switch_to_deploy()
        return [module]
    return [fused for child in module.children()
            for fused in _reparameterize(child)]


def _norm_before_conv(module):
    """A ConvModule whose norm layer runs before its conv (``order=('norm',
    'act', 'conv')``, as in PIDNet's and DDRNet's pyramid pooling): the conv
    is registered first, but no conv output goes through that norm."""
    return (isinstance(module, ConvModule) and module.with_norm
            and module.order.index('norm') < module.order.index('conv'))


def _fold_conv_bn(module, keep=()):
    """Fold each BN child into the conv child registered just before it
    (mmcv's ``fuse_conv_bn`` rule), recursively, except inside ConvModules
    whose norm precedes the conv and inside the modules of ``keep``: those
    are left as they are."""
    last_conv_name = None
    for name, child in list(module.named_children()):
        if isinstance(child, _BatchNorm):
            if last_conv_name is not None:
                module._modules[last_conv_name] = fuse_conv_bn_eval(
                    module._modules[last_conv_name], child)
                module._modules[name] = nn.Identity()
                last_conv_name = None
        elif isinstance(child, nn.Conv2d):
            last_conv_name = name
        elif not _norm_before_conv(child) and \
                not any(child is kept for kept in keep):
            _fold_conv_bn(child, keep)


def _fold_norms(module, keep=()):
    """:func:`_fold_conv_bn`, then each ConvModule whose BN was folded made
    exactly ``ConvModule(norm_cfg=None)`` (same keys: ``bias='auto'``
    gives that conv a bias)."""
    _fold_conv_bn(module, keep)
    for m in module.modules():
        if (isinstance(m, ConvModule) and m.with_norm
                and isinstance(m.norm, nn.Identity)):
            delattr(m, m.norm_name)
            m.norm_name, m.with_norm = None, False


def _norms_outside(module, keep, prefix=''):
    """``(name, module)`` of the norm layers (BNs, ConvModules with a
    norm) in ``module``, not looking inside the modules of ``keep``."""
    if any(module is kept for kept in keep):
        return []
    own = [(prefix, module)] if isinstance(module, _BatchNorm) or \
        isinstance(module, ConvModule) and module.with_norm else []
    return own + [found for child_name, child in module.named_children()
                  for found in _norms_outside(
                      child, keep,
                      f'{prefix}.{child_name}' if prefix else child_name)]


def _refuse_partial_folding(part, left):
    """A part of the model with some norm layers folded and others not
    is no structure a config builds (its ``norm_cfg`` is all or none)."""
    norm_first = [name for name, m in left if _norm_before_conv(m)]
    if norm_first:
        raise DeployError(f'cannot fold {norm_first[0]}: its norm layer '
                          'comes before the conv')
    raise DeployError(f'{len(left)} norm layers of {part} cannot be folded '
                      f'into a conv, e.g. {left[0][0]}')


def fuse_model(model, strict=True):
    """Fuse ``model`` in place (eval mode) and return it.

    Modules that re-parameterize themselves (``switch_to_deploy``: RepVGG,
    RDRNet) take their fused form; then conv+BN pairs are folded. With
    ``strict`` (what :func:`fuse_checkpoint` needs: :func:`deploy_config`
    must rebuild the result) the fused form of a re-parameterized module is
    left as its class defines it (what ``deploy=True`` builds: RDRNet keeps
    its pyramid pooling's pre-activation BNs and the BNs of its fusion
    convs, as the authors' fused checkpoints do), and each other part of
    the model (backbone, heads) has either all its norm layers folded (its
    deploy config: ``norm_cfg=None``) or none of them (a head whose BN
    comes before its conv, as MMSeg's ``DDRHead``: config unchanged);
    :class:`DeployError` for a part with some folded and some not (PIDNet's
    backbone). ``strict=False`` folds every conv followed by its BN,
    everywhere, and leaves every other norm layer as it is (a BN before its
    conv cannot be folded exactly): the fastest form, for measuring models
    built without fusion in mind, such as MMSeg's real-time networks.
    """
    model.eval()
    fused_by_class = _reparameterize(model)
    keep = fused_by_class if strict else ()
    before = {name: len(_norms_outside(child, keep))
              for name, child in model.named_children()}
    _fold_norms(model, keep)
    if strict:
        for name, child in model.named_children():
            left = _norms_outside(child, keep, name)
            if left and len(left) < before[name]:
                _refuse_partial_folding(name, left)
    return model


def unfolded_norms(model):
    """Names of the norm layers left in ``model`` (after fusion: the ones
    that could not be folded)."""
    return [name for name, _ in _norms_outside(model, ())]


def _reparameterizable(node):
    """A model config node whose class builds its fused form when told
    ``deploy=True`` (asked of the registered class itself)."""
    module_type = node.get('type')
    cls = MODELS.get(module_type) if isinstance(module_type, str) \
        else module_type
    return (inspect.isclass(cls) and hasattr(cls, 'switch_to_deploy')
            and 'deploy' in inspect.signature(cls).parameters)


def _deploy_nodes(node):
    """Model config dicts to switch: RepVGG-like ones (whose ``norm_cfg``
    describes their training form, so they are not searched) and those
    with a ``norm_cfg``."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _deploy_nodes(item)
    elif isinstance(node, dict):
        if _reparameterizable(node) or 'norm_cfg' in node:
            yield node
        if not _reparameterizable(node):
            for value in node.values():
                yield from _deploy_nodes(value)


def _folds_completely(node):
    """Whether every norm layer of the module that the config ``node``
    builds folds into a conv (then its deploy config has ``norm_cfg=None``;
    otherwise :func:`fuse_model` leaves them all, and the config as it
    is). Asked of the module itself, built on the meta device."""
    if 'type' not in node:
        return True
    with torch.device('meta'):
        module = MODELS.build(node).eval()
    _fold_norms(module)
    return not unfolded_norms(module)


def deploy_config(cfg):
    """The config that builds the fused structure of ``cfg``'s model."""
    cfg = copy.deepcopy(cfg)
    for node in _deploy_nodes(cfg.model):
        if _reparameterizable(node):
            # weights come from the fused checkpoint, not a pretrained file
            node.update(deploy=True, init_cfg=None)
        elif _folds_completely(node):
            node['norm_cfg'] = None
    return cfg


def is_deploy_config(cfg):
    return any(node.get('deploy') for node in _deploy_nodes(cfg.model)
               if _reparameterizable(node))


def _tensors(output):
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _tensors(item)]


@torch.no_grad()
def compare_outputs(original, fused, input_shape=CHECK_INPUT_SHAPE):
    """Max absolute and relative difference of the two models' eval-mode
    ``tensor`` outputs on one random input; NaN when either output is not
    finite (NaN or infinite weights), so that no tolerance accepts it."""
    inputs = torch.randn(input_shape,
                         generator=torch.Generator().manual_seed(0))
    expected = _tensors(original.eval()(inputs, mode='tensor'))
    actual = _tensors(fused.eval()(inputs, mode='tensor'))
    if not all(t.isfinite().all() for t in expected + actual):
        return math.nan, math.nan
    max_abs = max((a - e).abs().max().item()
                  for a, e in zip(actual, expected))
    scale = max(e.abs().max().item() for e in expected)
    return max_abs, max_abs / max(scale, 1e-12)


def _check_rebuilds(deploy_cfg, fused):
    """The deploy config must build exactly the fused model's tensors."""
    expected = {k: v.shape for k, v in build_model(deploy_cfg).state_dict()
                .items()}
    actual = {k: v.shape for k, v in fused.state_dict().items()}
    differ = sorted(k for k in expected.keys() | actual.keys()
                    if expected.get(k) != actual.get(k))
    if differ:
        raise DeployError(f'the deploy config does not rebuild the fused '
                          f'model: {len(differ)} tensors differ, e.g. '
                          f'{differ[0]}')


def _check_paths(config, checkpoint, out_checkpoint, out_config):
    inputs = dict(config=config, checkpoint=checkpoint)
    outputs = dict(checkpoint=out_checkpoint, config=out_config)
    for out_name, out_path in outputs.items():
        for in_name, in_path in inputs.items():
            if same_file(out_path, in_path):
                raise DeployError(f'the output {out_name} {out_path} would '
                                  f'overwrite the input {in_name}: choose '
                                  'another output path')
    if same_file(out_checkpoint, out_config):
        raise DeployError(f'the output checkpoint and config are both '
                          f'{out_checkpoint}: give the checkpoint a .pth name '
                          'or pass --out-config')


def fuse_checkpoint(config, checkpoint, out_checkpoint, out_config=None):
    """Fuse a trained checkpoint; write the fused checkpoint and its deploy
    config (each atomically) and return what was checked and written."""
    out_config = out_config or osp.splitext(out_checkpoint)[0] + '.py'
    _check_paths(config, checkpoint, out_checkpoint, out_config)
    cfg = read_config(config)
    source = read_checkpoint(checkpoint)
    if is_fused_checkpoint(source, checkpoint):
        raise DeployError(f'{checkpoint} is already fused: load it with its '
                          'deploy config (no need to fuse again)')
    model = build_model(cfg)
    load_weights(model, source, checkpoint, config)
    original = copy.deepcopy(model)
    fuse_model(model)
    max_abs, relative = compare_outputs(original, model)
    if math.isnan(relative):
        raise DeployError(f'the model computes NaN or infinite values: the '
                          f'weights in {checkpoint} are not finite (a '
                          'diverged training?); nothing was written')
    if relative > FUSE_TOLERANCE:
        raise DeployError(f'the fused model differs from the original by '
                          f'{relative:.2e} (relative): nothing was written')
    deploy_cfg = deploy_config(cfg)
    _check_rebuilds(deploy_cfg, model)
    arch = backbone_arch(model.state_dict())
    meta = dict(fused=True, arch=arch, cfg=deploy_cfg.pretty_text,
                source_checkpoint=osp.abspath(checkpoint))
    dataset_meta = dataset_meta_of(source, model)
    if dataset_meta is not None:
        meta['dataset_meta'] = dataset_meta
    # both or neither: each goes to a temporary file, renamed only when both
    # were written (the config first, so it is never missing its weights)
    os.makedirs(osp.dirname(osp.abspath(out_config)), exist_ok=True)
    with atomic_output(out_checkpoint) as tmp_checkpoint:
        atomic_torch_save(dict(meta=meta, state_dict=model.state_dict()),
                          tmp_checkpoint)
        with atomic_output(out_config) as tmp_config:
            deploy_cfg.dump(tmp_config)
    return dict(
        arch=arch, network=arch_label(arch), max_abs_diff=max_abs,
        relative_diff=relative,
        params=sum(p.numel() for p in original.parameters()),
        fused_params=sum(p.numel() for p in model.parameters()),
        out_checkpoint=out_checkpoint, out_config=out_config)
