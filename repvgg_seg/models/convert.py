"""Write RepVGG weights in another layout or form, or a backbone on its own.

Unlike loading for fine-tuning, conversion is strict: a missing or unexpected
tensor would silently become random or lost weights in the written file.
"""
import os.path as osp

from ..utils.errors import UserError
from ..utils.files import atomic_torch_save, same_file
from .backbones import ARCH_SETTINGS, RepVGG
from .checkpoints import (LAYOUTS, CheckpointMismatch, infer_arch,
                          is_deploy_form, load_matching_shapes,
                          read_backbone_state, read_checkpoint, refuse_rdrnet,
                          state_dict_of, to_backbone_keys, to_layout)

FORMS = ('train', 'deploy')


class ConversionError(UserError, ValueError):
    """A conversion that cannot be done without losing or inventing data."""


def _check_request(src, dst, arch, to, layout):
    if arch is not None and arch not in ARCH_SETTINGS:
        raise ConversionError(f'unknown arch {arch!r}; choose one of '
                              f'{sorted(ARCH_SETTINGS)}')
    if to not in FORMS + (None, ):
        raise ConversionError(f'unknown form {to!r}; choose one of {FORMS}')
    if layout not in LAYOUTS:
        raise ConversionError(f'unknown layout {layout!r}; choose one of '
                              f'{sorted(LAYOUTS)}')
    if same_file(src, dst):
        raise ConversionError(f'refusing to overwrite the source checkpoint '
                              f'{src}: choose another destination')


def convert_checkpoint(src, dst, arch=None, to=None, layout='repvgg-seg'):
    """Write the RepVGG-``arch`` (default: the arch found) backbone
    weights of ``src`` (any layout
    :func:`read_backbone_state` reads) to ``dst`` in form ``to`` (default:
    the form of ``src``) and ``layout``, with a ``meta`` entry saying what
    the file holds.

    Returns ``(meta, dropped_keys)``; ``dropped_keys`` are the source's
    non-backbone keys (classifier heads), which are not written.
    """
    _check_request(src, dst, arch, to, layout)
    state, dropped = read_backbone_state(src)
    deploy_source = is_deploy_form(state)
    to = to or ('deploy' if deploy_source else 'train')
    if deploy_source and to == 'train':
        raise ConversionError(
            f'{src} holds fused (deploy-form) weights, which cannot be split '
            'back into the three training branches; convert from the '
            'training-form checkpoint, or keep them fused (--to deploy)')
    found = infer_arch(state)
    if arch is None and found not in ARCH_SETTINGS:
        raise ConversionError(f'{src} holds RepVGG weights whose layers '
                              'match no predefined arch (incomplete or '
                              'custom weights)')
    arch = arch or found
    if found != arch:
        hint = (f'pass --arch {found} or use the RepVGG-{arch} checkpoint'
                if found in ARCH_SETTINGS else 'its layers match no '
                'predefined arch (incomplete or custom weights)')
        raise CheckpointMismatch(
            f'{src} holds RepVGG-{found} weights, not RepVGG-{arch}: {hint}')
    model = RepVGG(arch=arch, deploy=deploy_source)
    result = load_matching_shapes(model, state, 'source')
    missing = [k for k in result.missing_keys
               if not k.endswith('num_batches_tracked')]
    if missing or result.unexpected_keys:
        raise ConversionError(
            f'{src} does not hold a complete RepVGG-{arch}: missing '
            f'{missing[:5]} ({len(missing)} in all), unexpected '
            f'{result.unexpected_keys[:5]} '
            f'({len(result.unexpected_keys)} in all)')
    if to == 'deploy':
        model.eval().switch_to_deploy()
    meta = dict(arch=arch, form=to, layout=layout, source=osp.abspath(src))
    atomic_torch_save(
        dict(meta=meta, state_dict=to_layout(model.state_dict(), layout)),
        dst)
    return meta, dropped


def extract_backbone(src, out):
    """Save the RepVGG backbone of the checkpoint ``src`` (any layout and
    form) to ``out`` with bare backbone keys, ready for a segmentation
    backbone's ``init_cfg``; return its meta and counts."""
    if same_file(src, out):
        raise ConversionError(f'the output {out} would overwrite the input')
    state = state_dict_of(read_checkpoint(src), src)
    refuse_rdrnet(state, src)
    backbone, others = to_backbone_keys(state)
    if not backbone:
        raise CheckpointMismatch(f'{src} holds no RepVGG backbone weights '
                                 f'(keys like {others[:3]})')
    meta = dict(arch=infer_arch(backbone), fused=is_deploy_form(backbone),
                source_checkpoint=osp.abspath(src))
    atomic_torch_save(dict(meta=meta, state_dict=backbone), out)
    return dict(meta, tensors=len(backbone), dropped=len(others))
