"""Load RepVGG weights from any of the layouts users hold.

* official RepVGG (``stage0.rbr_dense.conv.weight``, ``stage2.3.rbr_identity``,
  ``linear.weight``; deploy files ``stageN.i.rbr_reparam.{weight,bias}``),
  possibly wrapped in ``state_dict``/``model`` and prefixed ``module.``;
* mmpretrain (``backbone.stage_1.0.branch_3x3.conv.weight``, ``head.fc``);
* ours: a bare backbone, or a segmentor/classifier with ``backbone.`` keys.

Training-form weights are fused on the fly for a deploy-form model; fused
weights cannot be un-fused, so they are refused for a training-form model.
"""
import logging
import re

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint

_OFFICIAL_RENAMES = (
    (re.compile(r'^stage0\.'), 'stem.'),
    (re.compile(r'^stage(\d)\.'), r'stage_\1.'),
    (re.compile(r'\.rbr_dense\.'), '.branch_3x3.'),
    (re.compile(r'\.rbr_1x1\.'), '.branch_1x1.'),
    (re.compile(r'\.rbr_identity\.'), '.branch_norm.'),
    (re.compile(r'\.rbr_reparam\.'), '.branch_reparam.'),
)
_BACKBONE_KEY = re.compile(r'^(stem|stage_\d)\.')


class PretrainedMismatchError(ValueError):
    """Weights that do not fit the model they are loaded into."""


def unwrap_state_dict(checkpoint):
    """The flat ``name -> tensor`` dict inside any common wrapping."""
    state = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedMismatchError(
            'checkpoint holds no state dict of tensors (looked at the top '
            "level and under 'state_dict' / 'model')")
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()}


def to_backbone_keys(state):
    """Rename any known layout to this package's backbone keys.

    Returns ``(backbone_state, other_keys)``; ``other_keys`` are the keys that
    are not backbone weights (heads), kept for reporting.
    """
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')} | {
                     k: v for k, v in state.items()
                     if not k.startswith('backbone.')
                     and not _BACKBONE_KEY.match(k)}
    backbone, others = {}, []
    for key, value in state.items():
        new_key = key
        for pattern, repl in _OFFICIAL_RENAMES:
            new_key = pattern.sub(repl, new_key)
        if _BACKBONE_KEY.match(new_key):
            backbone[new_key] = value
        else:
            others.append(key)
    return backbone, others


def is_deploy_form(state):
    return any('.branch_reparam.' in k for k in state)


def _kernel(state, prefix):
    for suffix in ('branch_3x3.conv.weight', 'branch_reparam.weight'):
        if f'{prefix}.{suffix}' in state:
            return state[f'{prefix}.{suffix}']
    return None


def infer_arch(state):
    """Name the arch of backbone weights: ``'unknown'`` when they are
    incomplete, ``'custom'`` when no predefined arch matches."""
    from .repvgg import ARCH_SETTINGS
    num_blocks = []
    for i in range(1, 5):
        indices = {int(k.split('.')[1]) for k in state
                   if k.startswith(f'stage_{i}.')}
        num_blocks.append(max(indices) + 1 if indices else 0)
    prefixes = ['stem'] + [f'stage_{i + 1}.{j}' for i, n in
                           enumerate(num_blocks) for j in range(n)]
    kernels = [_kernel(state, p) for p in prefixes]
    if 0 in num_blocks or any(k is None for k in kernels):
        return 'unknown'
    widths = [k.shape[0] for k in kernels]
    groups = {idx: widths[idx - 1] // kernels[idx].shape[1]
              for idx in range(1, len(kernels))
              if widths[idx - 1] // kernels[idx].shape[1] > 1}
    stage_widths = [widths[sum(num_blocks[:i + 1])] for i in range(4)]
    for name, arch in ARCH_SETTINGS.items():
        expected = [int(64 * 2**i * f)
                    for i, f in enumerate(arch['width_factor'])]
        if (tuple(num_blocks) == tuple(arch['num_blocks'])
                and stage_widths == expected
                and groups == arch['group_layer_map']):
            return name
    return 'custom'


def fuse_training_weights(model, state):
    """Fused (deploy-form) weights for ``model`` from training-form ones, via
    a training-form twin of the same configuration."""
    from .repvgg import RepVGG
    twin = RepVGG(**model.build_args)
    _load_strict_shapes(twin, state, 'training-form')
    twin.eval().switch_to_deploy()
    return twin.state_dict()


def _load_strict_shapes(model, state, what):
    own = model.state_dict()
    bad = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
           for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise PretrainedMismatchError(
            f'{what} weights are for RepVGG-{infer_arch(state)} but the model '
            f'is RepVGG-{model.arch_name}; {len(bad)} tensors differ in '
            f'shape, e.g. {bad[0]}. Use the checkpoint of the same arch.')
    return model.load_state_dict(state, strict=False)


def load_pretrained(model, filename, prefix=None):
    """Load ``filename`` into the RepVGG ``model``; warn loudly about keys
    that did not match. ``prefix`` selects a sub-module's weights (e.g.
    ``'backbone.'``) in the MMEngine ``Pretrained`` convention."""
    checkpoint = _load_checkpoint(filename, map_location='cpu')
    state = unwrap_state_dict(checkpoint)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items()
                 if k.startswith(prefix)}
    state, others = to_backbone_keys(state)
    if not state:
        raise PretrainedMismatchError(
            f'{filename} holds no RepVGG backbone weights (found keys like '
            f'{others[:3]}). Expected the official RepVGG, mmpretrain or '
            'repvgg-seg layout.')
    checkpoint_deploy = is_deploy_form(state)
    if checkpoint_deploy and not model.deploy:
        raise PretrainedMismatchError(
            f'{filename} holds fused (deploy-form) RepVGG weights, which '
            'cannot be split back into the three training branches. For '
            'inference set deploy=True on the backbone (e.g. --cfg-options '
            'model.backbone.deploy=True); to fine-tune use the training-form '
            'checkpoint (e.g. RepVGG-B2-train.pth).')
    if model.deploy and not checkpoint_deploy:
        state = fuse_training_weights(model, state)
    result = _load_strict_shapes(model, state, 'pretrained')
    form = 'deploy form' if checkpoint_deploy else 'training form'
    if model.deploy and not checkpoint_deploy:
        form += ', fused on load'
    print_log(f'RepVGG-{model.arch_name}: loaded {len(state)} tensors from '
              f'{filename} ({form}); ignored {len(others)} non-backbone keys',
              logger='current')
    for kind, keys in (('missing', result.missing_keys),
                       ('unexpected', result.unexpected_keys)):
        if keys:
            print_log(f'RepVGG-{model.arch_name}: {len(keys)} {kind} keys '
                      f'when loading {filename}: {keys}', logger='current',
                      level=logging.WARNING)
    return result
