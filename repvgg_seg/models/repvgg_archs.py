"""The RepVGG family as data: blocks per stage, width multipliers, grouped
layers, SE and stem width of every arch (the paper's Table 2, the official
code, mmpretrain's ``RepVGG.arch_settings``), and the checks a custom arch
dict passes.

Kept apart from the modules so the checkpoint readers can name the arch of
a weight file without building a network.

Errors: everything mmpretrain checks with ``assert`` raises
:class:`RepVGGArgumentError`, a :class:`~repvgg_seg.utils.errors.
InvalidArgument` (so a ``ValueError`` and a ``UserError``) that is also an
``AssertionError``; an unknown arch name or a missing arch key is also a
``KeyError``, a wrong arch type also a ``TypeError``. Code written against
mmpretrain (``except AssertionError``) and against this package (``except
ValueError``) both keep working.
"""
import copy
from numbers import Real

from ..utils.errors import InvalidArgument


class RepVGGArgumentError(InvalidArgument, AssertionError):
    """A RepVGG argument that cannot build a network (where mmpretrain
    asserts)."""


class RepVGGArchKeyError(RepVGGArgumentError, KeyError):
    """An unknown arch name, or a custom arch dict missing a key."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ''


class RepVGGArchTypeError(InvalidArgument, TypeError):
    """An arch that is neither a name nor a dict."""


_GROUPED_LAYERS = tuple(range(2, 27, 2))  # 3x3 layers 2, 4, ..., 26 (stem = 0)
G2_MAP = {layer: 2 for layer in _GROUPED_LAYERS}
G4_MAP = {layer: 4 for layer in _GROUPED_LAYERS}
#: mmpretrain's default when an arch dict has no ``stem_channels``.
DEFAULT_STEM_CHANNELS = 64
#: The keys of an arch dict (mmpretrain's).
ARCH_KEYS = ('num_blocks', 'width_factor', 'group_layer_map', 'se_cfg',
             'stem_channels')
#: The keys of ``se_cfg`` (arguments of :class:`.repvgg_blocks.SELayer`).
SE_KEYS = ('ratio', 'divisor', 'squeeze_channels', 'bias', 'act_cfg')


def _arch(num_blocks, width_factor, group_layer_map=None, se_cfg=None,
          stem_channels=DEFAULT_STEM_CHANNELS):
    return dict(num_blocks=tuple(num_blocks),
                width_factor=tuple(width_factor),
                group_layer_map=dict(group_layer_map or {}), se_cfg=se_cfg,
                stem_channels=stem_channels)


_A_BLOCKS, _B_BLOCKS = (2, 4, 14, 1), (4, 6, 16, 1)

#: Blocks per stage (stem excluded), width multipliers ``(a, a, a, b)`` and
#: which 3x3 layers are grouped, as in the paper's Table 2 and official code;
#: ``yolox-pai-small`` is mmpretrain's (YOLOX-PAI's backbone, 32-wide stem).
ARCH_SETTINGS = {
    'A0': _arch(_A_BLOCKS, (0.75, 0.75, 0.75, 2.5)),
    'A1': _arch(_A_BLOCKS, (1, 1, 1, 2.5)),
    'A2': _arch(_A_BLOCKS, (1.5, 1.5, 1.5, 2.75)),
    'B0': _arch(_B_BLOCKS, (1, 1, 1, 2.5)),
    'B1': _arch(_B_BLOCKS, (2, 2, 2, 4)),
    'B1g2': _arch(_B_BLOCKS, (2, 2, 2, 4), G2_MAP),
    'B1g4': _arch(_B_BLOCKS, (2, 2, 2, 4), G4_MAP),
    'B2': _arch(_B_BLOCKS, (2.5, 2.5, 2.5, 5)),
    'B2g2': _arch(_B_BLOCKS, (2.5, 2.5, 2.5, 5), G2_MAP),
    'B2g4': _arch(_B_BLOCKS, (2.5, 2.5, 2.5, 5), G4_MAP),
    'B3': _arch(_B_BLOCKS, (3, 3, 3, 5)),
    'B3g2': _arch(_B_BLOCKS, (3, 3, 3, 5), G2_MAP),
    'B3g4': _arch(_B_BLOCKS, (3, 3, 3, 5), G4_MAP),
    'D2se': _arch((8, 14, 24, 1), (2.5, 2.5, 2.5, 5),
                  se_cfg=dict(ratio=16, divisor=1)),
    'yolox-pai-small': _arch((3, 5, 7, 3), (1, 1, 1, 1), stem_channels=32),
}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check(condition, message):
    if not condition:
        raise RepVGGArgumentError(f'RepVGG: {message}')


def _check_sequence(name, value, is_valid, what):
    _check(isinstance(value, (list, tuple)) and value
           and all(is_valid(v) for v in value),
           f'arch {name} must be a non-empty list of {what}, got {value!r}')


def _check_group_layer_map(group_layer_map, num_layers):
    if group_layer_map is None:
        return
    _check(isinstance(group_layer_map, dict),
           f'arch group_layer_map must be a dict {{layer: groups}} or None, '
           f'got {group_layer_map!r}')
    for layer, groups in group_layer_map.items():
        _check(_is_int(layer) and 1 <= layer <= num_layers,
               f'arch group_layer_map key {layer!r} is not a layer: the '
               f'layers after the stem are numbered 1..{num_layers}')
        _check(_is_int(groups) and groups >= 1,
               f'arch group_layer_map[{layer}] must be a positive int, got '
               f'{groups!r}')


def _check_se_cfg(se_cfg):
    if se_cfg is None:
        return
    _check(isinstance(se_cfg, dict),
           f'arch se_cfg must be a dict or None, got {se_cfg!r}')
    unknown = sorted(set(se_cfg) - set(SE_KEYS))
    _check(not unknown, f'arch se_cfg has unknown keys {unknown}; the keys '
           f'are {list(SE_KEYS)}')
    for key in ('ratio', 'divisor', 'squeeze_channels'):
        value = se_cfg.get(key)
        _check(value is None or (_is_int(value) and value >= 1),
               f'arch se_cfg[{key!r}] must be a positive int, got {value!r}')


def check_arch_dict(arch):
    """Refuse, with a message naming the field, a custom arch dict that
    would build a broken network or silently ignore a setting."""
    missing = [k for k in ('num_blocks', 'width_factor') if k not in arch]
    if missing:
        raise RepVGGArchKeyError(
            f'RepVGG: a custom arch dict needs {missing} (and may have '
            f'{list(ARCH_KEYS[2:])}), got keys {sorted(arch)}')
    unknown = sorted(set(arch) - set(ARCH_KEYS))
    _check(not unknown, f'arch has unknown keys {unknown}; the keys are '
           f'{list(ARCH_KEYS)}')
    num_blocks, width_factor = arch['num_blocks'], arch['width_factor']
    _check_sequence('num_blocks', num_blocks,
                    lambda v: _is_int(v) and v >= 1, 'positive ints')
    _check_sequence('width_factor', width_factor,
                    lambda v: isinstance(v, Real) and not isinstance(
                        v, bool) and v > 0, 'positive numbers')
    _check(len(width_factor) == len(num_blocks),
           f'arch width_factor needs one value per stage '
           f'({len(num_blocks)}, as num_blocks), got {len(width_factor)}')
    _check_group_layer_map(arch.get('group_layer_map'), sum(num_blocks))
    _check_se_cfg(arch.get('se_cfg'))
    stem = arch.get('stem_channels', DEFAULT_STEM_CHANNELS)
    _check(_is_int(stem) and stem >= 1,
           f'arch stem_channels must be a positive int, got {stem!r}')


def resolve_arch(arch, arch_settings=ARCH_SETTINGS):
    """The checked settings of an arch name (looked up in
    ``arch_settings``, which may be written mmpretrain's way) or of a custom
    arch dict, with every key filled in."""
    if isinstance(arch, str):
        if arch not in arch_settings:
            raise RepVGGArchKeyError(
                f'RepVGG: unknown arch {arch!r}; choose one of '
                f'{sorted(arch_settings)} or pass a dict')
        arch = arch_settings[arch]
    if not isinstance(arch, dict):
        raise RepVGGArchTypeError(
            f'RepVGG: arch must be an arch name or a dict, got '
            f'{type(arch).__name__} {arch!r}')
    check_arch_dict(arch)
    return _arch(arch['num_blocks'], arch['width_factor'],
                 copy.deepcopy(arch.get('group_layer_map')),
                 copy.deepcopy(arch.get('se_cfg')),
                 arch.get('stem_channels', DEFAULT_STEM_CHANNELS))


def stem_width(arch, base_channels=64):
    """Output channels of the stem: never wider than the first stage."""
    return min(arch['stem_channels'],
               int(base_channels * arch['width_factor'][0]))


def arch_name(num_blocks, stage_widths, groups, stem=None, base_channels=64):
    """The name of the arch with these blocks per stage, stage widths,
    ``{layer: groups}`` and (if given) stem width; ``'custom'`` when none
    has them."""
    for name, arch in ARCH_SETTINGS.items():
        expected = [int(base_channels * 2**i * f)
                    for i, f in enumerate(arch['width_factor'])]
        if (tuple(num_blocks) == arch['num_blocks']
                and list(stage_widths) == expected
                and groups == arch['group_layer_map']
                and stem in (None, stem_width(arch, base_channels))):
            return name
    return 'custom'
