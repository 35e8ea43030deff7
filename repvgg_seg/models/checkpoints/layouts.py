"""The key layouts RepVGG weights come in, and the renames between them.

* official RepVGG (``stage0.rbr_dense.conv.weight``, ``stage2.3.rbr_identity``,
  ``linear.weight``; deploy files ``stageN.i.rbr_reparam.{weight,bias}``),
  possibly wrapped in ``state_dict``/``model`` and prefixed ``module.``;
* mmpretrain (``backbone.stage_1.0.branch_3x3.conv.weight``, its BNs named
  ``branch_3x3.norm``; ``head.fc``); its SE names (``se_layer.conv1.conv``)
  are ours;
* ours: a bare backbone, or a segmentor/classifier with ``backbone.`` keys.

RDRNet weights come in one layout, the authors' (``stem.0.path_3x3``,
``semantic_branch_layers.0.1.path_1x1.conv1.conv``, ``spp.processes``;
fused ``reparam_3x3``, ``spp.processes.reparam_parallel``), which is ours
too: they load as they are and need no renaming; :func:`rdrnet_arch`
recognises them.

The renames are tables of ``(ours, theirs)`` names so that :func:`to_layout`
writes the other layouts back with the same tables.
"""
import re

import torch

from ...utils.errors import UserError
from ..repvgg_archs import arch_name

#: The fused conv of a block (``RepVGGBlock.switch_to_deploy`` creates it).
FUSED_CONV = 'branch_reparam'
#: RDRNet's fused convs: of each RB, and of the RPPM's refinement.
RDRNET_FUSED_CONVS = ('reparam_3x3', 'reparam_parallel')
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
    ('se_layer.conv1.conv', 'se.down'),
    ('se_layer.conv2.conv', 'se.up'),
)
#: ``(ours, mmpretrain)``: mmpretrain names a branch's BN ``norm`` (ours is a
#: ConvModule, whose BN is ``bn``).
MMPRETRAIN_NAMES = (
    ('branch_3x3.bn', 'branch_3x3.norm'),
    ('branch_1x1.bn', 'branch_1x1.norm'),
)
#: Output layouts: ``layout -> (name table, key prefix)``.
LAYOUTS = {
    'repvgg-seg': ((), ''),
    'official': (OFFICIAL_NAMES, ''),
    'mmpretrain': (MMPRETRAIN_NAMES, 'backbone.'),
}
_BACKBONE_KEY = re.compile(r'^(stem|stage_\d)\.')


class CheckpointMismatch(UserError, ValueError):
    """Weights that do not fit the model they are loaded into."""


def unwrap_state_dict(checkpoint):
    """The flat ``name -> tensor`` dict inside any common wrapping."""
    state = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatch(
            'checkpoint holds no state dict of tensors (looked at the top '
            "level and under 'state_dict' / 'model')")
    odd_key = next((k for k in state if not isinstance(k, str)), None)
    if odd_key is not None:
        raise CheckpointMismatch(
            f'the state dict has a key {odd_key!r} of type '
            f'{type(odd_key).__name__}: keys must be parameter names (str)')
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
    """Whether RepVGG or RDRNet weights (our keys, with or without the
    ``backbone.`` prefix) are fused: one conv a block."""
    fused = [f'.{name}.' for name in (FUSED_CONV, ) + RDRNET_FUSED_CONVS]
    return any(name in k for k in state for name in fused)


def is_rdrnet_state(state):
    """Whether a state dict (bare backbone or whole model) is RDRNet's."""
    return any(k.startswith(('semantic_branch_layers.',
                             'backbone.semantic_branch_layers.'))
               for k in state)


def _indices(state, prefix):
    """The block indices ``i`` of the keys ``prefix + 'i.'``."""
    return {int(k[len(prefix):].split('.')[0]) for k in state
            if k.startswith(prefix) and k[len(prefix):].split('.')[0]
            .isdigit()}


def rdrnet_arch(state):
    """RDRNet weights described by the backbone arguments that build them
    (``'RDRNet(channels=32, ppm_channels=128, num_blocks_per_stage=[4, 3,
    [5, 4], [5, 4], [1, 1]])'``), read from the keys and kernel shapes;
    ``'RDRNet (incomplete)'`` when they do not say; None for other
    weights."""
    if not is_rdrnet_state(state):
        return None
    prefix = 'backbone.' if any(k.startswith('backbone.') for k in state) \
        else ''
    widths = {}
    for i in _indices(state, f'{prefix}stem.'):
        for conv in ('path_3x3.conv', 'reparam_3x3'):
            kernel = state.get(f'{prefix}stem.{i}.{conv}.weight')
            if kernel is not None and kernel.dim() == 4:
                widths[i] = kernel.shape[0]
    ppm = state.get(f'{prefix}spp.scales.0.conv.weight')
    if not widths or sorted(widths) != list(range(len(widths))) or \
            ppm is None or ppm.dim() != 4 or \
            2 * widths[0] not in widths.values():
        return 'RDRNet (incomplete)'
    stage3 = min(i for i, width in widths.items() if width == 2 * widths[0])

    def count(stage):
        return len(_indices(state, f'{prefix}{stage}.'))

    semantic, detail = 'semantic_branch_layers', 'detail_branch_layers'
    blocks = [stage3 - 2, len(widths) - stage3 - 1,
              [count(f'{semantic}.0') - 1, count(f'{detail}.0')],
              [count(f'{semantic}.1') - 1, count(f'{detail}.1')],
              [count(f'{semantic}.2.0'), count(f'{detail}.2')]]
    return (f'RDRNet(channels={widths[0]}, ppm_channels={ppm.shape[0]}, '
            f'num_blocks_per_stage={blocks})')


def arch_label(arch):
    """How messages name an arch: ``RepVGG-B2``, or RDRNet's description."""
    return arch if arch.startswith('RDRNet') else f'RepVGG-{arch}'


def _kernel(state, prefix):
    """The 3x3 (or fused) conv kernel of a block; refused when it is not a
    4-D kernel, as the arch is read from its shape."""
    for suffix in ('branch_3x3.conv.weight', f'{FUSED_CONV}.weight'):
        kernel = state.get(f'{prefix}.{suffix}')
        if kernel is not None:
            if kernel.dim() != 4 or 0 in kernel.shape:
                raise CheckpointMismatch(
                    f'{prefix}.{suffix} has shape {tuple(kernel.shape)}, '
                    'not a conv kernel (out, in, height, width)')
            return kernel
    return None


def _block_index(key):
    index = key.split('.')[1]
    if not index.isdigit():
        raise CheckpointMismatch(f'key {key}: block index {index!r} is not '
                                 'a number (expected e.g. stage_1.0.)')
    return int(index)


def infer_arch(state):
    """Name the arch of backbone weights: ``'unknown'`` when they are
    incomplete, ``'custom'`` when no predefined arch matches."""
    num_blocks = []
    for i in range(1, 5):
        indices = {_block_index(k) for k in state
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
    return arch_name(num_blocks, stage_widths, groups, stem=widths[0])
