"""Load RepVGG weights from any of the layouts users hold.

* official RepVGG (``stage0.rbr_dense.conv.weight``, ``stage2.3.rbr_identity``,
  ``linear.weight``; deploy files ``stageN.i.rbr_reparam.{weight,bias}``),
  possibly wrapped in ``state_dict``/``model`` and prefixed ``module.``;
* mmpretrain (``backbone.stage_1.0.branch_3x3.conv.weight``, its BNs named
  ``branch_3x3.norm``, SE convs ``se_layer.conv1.conv``; ``head.fc``);
* ours: a bare backbone, or a segmentor/classifier with ``backbone.`` keys.

Training-form weights are fused on the fly for a deploy-form model; fused
weights cannot be un-fused, so they are refused for a training-form model.
The renames are tables of ``(ours, theirs)`` names so that
:func:`to_layout` can write the other layouts back with the same tables.
"""
import logging
import re

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint
from ...utils.errors import UserError

#: ``(ours, official)`` module names, whole dot-separated parts of a key.
OFFICIAL_NAMES = (
    ('stem', 'stage0'),
    ('stage_1', 'stage1'),
    ('stage_2', 'stage2'),
    ('stage_3', 'stage3'),
    ('stage_4', 'stage4'),
    ('branch_3x3', 'rbr_dense'),
    ('branch_1x1', 'rbr_1x1'),
    ('branch_norm', 'rbr_identity'),
    ('branch_reparam', 'rbr_reparam'),
)
#: ``(ours, mmpretrain)``: mmpretrain names a branch's BN ``norm`` (ours is a
#: ConvModule, whose BN is ``bn``) and builds its SE from ConvModules.
MMPRETRAIN_NAMES = (
    ('branch_3x3.bn', 'branch_3x3.norm'),
    ('branch_1x1.bn', 'branch_1x1.norm'),
    ('se.down', 'se_layer.conv1.conv'),
    ('se.up', 'se_layer.conv2.conv'),
)
#: Output layouts: ``layout -> (name table, key prefix)``.
LAYOUTS = {
    'repvgg-seg': ((), ''),
    'official': (OFFICIAL_NAMES, ''),
    'mmpretrain': (MMPRETRAIN_NAMES, 'backbone.'),
}
_BACKBONE_KEY = re.compile(r'^(stem|stage_\d)\.')


class PretrainedMismatchError(UserError, ValueError):
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


def _rename(key, names, reverse=False):
    """Swap whole dot-separated names of ``key`` using ``(ours, theirs)``
    pairs: theirs -> ours, or ours -> theirs with ``reverse``."""
    key = f'.{key}.'
    for ours, theirs in names:
        old, new = (ours, theirs) if reverse else (theirs, ours)
        key = key.replace(f'.{old}.', f'.{new}.')
    return key[1:-1]


def to_layout(state, layout):
    """Our backbone keys renamed to ``layout`` (one of :data:`LAYOUTS`): the
    inverse of :func:`to_backbone_keys`."""
    names, prefix = LAYOUTS[layout]
    return {prefix + _rename(k, names, reverse=True): v
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
        new_key = _rename(key, OFFICIAL_NAMES + MMPRETRAIN_NAMES)
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


def warn_unmatched_keys(result, model, source):
    """Log the missing/unexpected keys of a non-strict load as warnings."""
    for kind, keys in (('missing', result.missing_keys),
                       ('unexpected', result.unexpected_keys)):
        if keys:
            print_log(f'RepVGG-{model.arch_name}: {len(keys)} {kind} keys '
                      f'when loading {source}: {keys}', logger='current',
                      level=logging.WARNING)


def fuse_training_weights(model, state, source='training-form weights'):
    """Fused (deploy-form) weights for ``model`` from training-form ones, via
    a training-form twin of the same configuration.

    Keys that do not match are reported here: the fused state is complete by
    construction, so loading it cannot show them any more.
    """
    from .repvgg import RepVGG
    twin = RepVGG(**model.build_args)
    warn_unmatched_keys(_load_strict_shapes(twin, state, 'training-form'),
                        model, source)
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


def read_backbone_state(filename, prefix=None):
    """The backbone weights of any supported checkpoint file, in our keys.

    Returns ``(backbone_state, other_keys)`` as :func:`to_backbone_keys`.
    ``prefix`` selects a sub-module's weights (e.g. ``'backbone.'``).
    """
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
    return state, others


def load_pretrained(model, filename, prefix=None):
    """Load ``filename`` into the RepVGG ``model``; warn loudly about keys
    that did not match. ``prefix`` selects a sub-module's weights (e.g.
    ``'backbone.'``) in the MMEngine ``Pretrained`` convention."""
    state, others = read_backbone_state(filename, prefix)
    checkpoint_deploy = is_deploy_form(state)
    if checkpoint_deploy and not model.deploy:
        raise PretrainedMismatchError(
            f'{filename} holds fused (deploy-form) RepVGG weights, which '
            'cannot be split back into the three training branches. For '
            'inference set deploy=True on the backbone (e.g. --cfg-options '
            'model.backbone.deploy=True); to fine-tune use the training-form '
            'checkpoint (e.g. RepVGG-B2-train.pth).')
    form = 'deploy form' if checkpoint_deploy else 'training form'
    if model.deploy and not checkpoint_deploy:
        model.load_state_dict(fuse_training_weights(model, state, filename))
        form += ', fused on load'
    else:
        warn_unmatched_keys(_load_strict_shapes(model, state, 'pretrained'),
                            model, filename)
    print_log(f'RepVGG-{model.arch_name}: loaded {len(state)} tensors from '
              f'{filename} ({form}); ignored {len(others)} non-backbone keys',
              logger='current')
