"""The RepVGG family as data: blocks per stage, width multipliers and
grouped layers of every arch (the paper's Table 2 and the official code).

Kept apart from the modules so the checkpoint readers can name the arch of
a weight file without building a network.
"""
import copy

from ..utils.errors import UserError


class UnknownArch(UserError, KeyError):
    """An arch name or dict that names no RepVGG arch."""

    def __str__(self):  # KeyError would print the message's repr
        return str(self.args[0]) if self.args else ''

_GROUPED_LAYERS = tuple(range(2, 27, 2))  # 3x3 layers 2, 4, ..., 26 (stem = 0)
G2_MAP = {layer: 2 for layer in _GROUPED_LAYERS}
G4_MAP = {layer: 4 for layer in _GROUPED_LAYERS}


def _arch(num_blocks, width_factor, group_layer_map=None, se_cfg=None):
    return dict(num_blocks=num_blocks, width_factor=width_factor,
                group_layer_map=group_layer_map or {}, se_cfg=se_cfg)


_A_BLOCKS, _B_BLOCKS = (2, 4, 14, 1), (4, 6, 16, 1)

#: Blocks per stage (stem excluded), width multipliers ``(a, a, a, b)`` and
#: which 3x3 layers are grouped, as in the paper's Table 2 and official code.
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
}



def resolve_arch(arch, arch_settings=ARCH_SETTINGS):
    """The settings dict of an arch name or of a custom arch dict."""
    if isinstance(arch, str):
        if arch not in arch_settings:
            raise UnknownArch(f'RepVGG: unknown arch {arch!r}; choose '
                                  f'one of {sorted(arch_settings)} or pass '
                                  'a dict')
        return copy.deepcopy(arch_settings[arch])
    missing = {'num_blocks', 'width_factor'} - set(arch)
    if missing:
        raise UnknownArch(
            f'RepVGG: a custom arch dict needs {sorted(missing)}')
    return _arch(tuple(arch['num_blocks']), tuple(arch['width_factor']),
                 arch.get('group_layer_map'), arch.get('se_cfg'))


def arch_name(num_blocks, stage_widths, groups, base_channels=64):
    """The name of the arch with these blocks per stage, stage widths and
    ``{layer: groups}``; ``'custom'`` when none has them."""
    for name, arch in ARCH_SETTINGS.items():
        expected = [int(base_channels * 2**i * f)
                    for i, f in enumerate(arch['width_factor'])]
        if (tuple(num_blocks) == tuple(arch['num_blocks'])
                and list(stage_widths) == expected
                and groups == arch['group_layer_map']):
            return name
    return 'custom'
