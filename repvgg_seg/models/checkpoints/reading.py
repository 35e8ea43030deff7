"""Read checkpoint files (any source mmengine knows, always weights-only)
and what they record: weights, form, arch, class names and palette."""
import logging

from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader

from mmseg.datasets import CityscapesDataset
from .layouts import (CheckpointMismatch, infer_arch, is_deploy_form,
                      is_rdrnet_state, rdrnet_arch, to_backbone_keys,
                      unwrap_state_dict)


def read_checkpoint(path):
    """The checkpoint dict, loaded safely (weights only) on the CPU; one
    that is not a dict, or whose ``meta`` is not one, is refused (every
    reader below looks things up in both)."""
    # silent: the Runner (or the model loader) logs the loading it does
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu',
                                                  logger='silent')
    for what, value in (('the checkpoint', checkpoint),
                        ("its 'meta'", checkpoint.get('meta', {})
                         if isinstance(checkpoint, dict) else {})):
        if not isinstance(value, dict):
            raise CheckpointMismatch(
                f'{path}: {what} is a {type(value).__name__}, not a dict '
                '(save a dict with a state_dict, as torch.save(model.'
                'state_dict()) or the Runner does)')
    return checkpoint


def state_dict_of(checkpoint, path):
    """The flat state dict of a checkpoint read from ``path``, its RepVGG
    keys checked (a kernel of no conv shape, a block index that is no
    number) so that every reader can rely on them."""
    try:
        state = unwrap_state_dict(checkpoint)
        backbone_arch(state)
    except CheckpointMismatch as exc:
        raise CheckpointMismatch(f'{path}: {exc}') from None
    return state


def is_fused_checkpoint(checkpoint, path):
    """Fused by tools/fuse.py, or any RepVGG or RDRNet weights in deploy
    form (the RDRNet authors' fused files have no ``meta``)."""
    return bool(checkpoint.get('meta', {}).get('fused')) or is_deploy_form(
        state_dict_of(checkpoint, path))


def backbone_arch(state):
    """RepVGG arch name (or RDRNet description, :func:`rdrnet_arch`) of a
    model's or checkpoint's state dict."""
    return rdrnet_arch(state) or infer_arch(to_backbone_keys(state)[0])


def refuse_rdrnet(state, path):
    """The RepVGG backbone tools (conversion, extraction, ImageNet
    initialisation) have nothing to do with RDRNet weights."""
    if is_rdrnet_state(state):
        raise CheckpointMismatch(
            f'{path} holds RDRNet weights, not RepVGG ones: RDRNet '
            'checkpoints (the authors\' or ours, training or fused form) '
            'need no conversion; load them as they are (tools/test.py CONFIG '
            'CHECKPOINT) and fuse them with tools/fuse.py')


def read_backbone_state(filename, prefix=None):
    """The backbone weights of any supported checkpoint file, in our keys.

    Returns ``(backbone_state, other_keys)`` as :func:`to_backbone_keys`.
    ``prefix`` selects a sub-module's weights (e.g. ``'backbone.'``).
    """
    state = state_dict_of(read_checkpoint(filename), filename)
    refuse_rdrnet(state, filename)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items()
                 if k.startswith(prefix)}
    state, others = to_backbone_keys(state)
    if not state:
        raise CheckpointMismatch(
            f'{filename} holds no RepVGG backbone weights (found keys like '
            f'{others[:3]}). Expected the official RepVGG, mmpretrain or '
            'repvgg-seg layout.')
    return state, others


def dataset_meta_of(checkpoint, model):
    """Class names and palette saved by the Runner; for a segmentor saved
    without them, Cityscapes' (this project's data set)."""
    meta = checkpoint.get('meta', {}).get('dataset_meta')
    if meta is not None and not isinstance(meta, dict):
        raise CheckpointMismatch(
            f"the checkpoint's meta['dataset_meta'] is a "
            f'{type(meta).__name__}, not a dict of classes and palette')
    if meta is None and hasattr(model, 'decode_head'):
        if checkpoint:  # not worth a warning when no checkpoint was given
            print_log('The checkpoint has no dataset_meta: using the '
                      'Cityscapes classes and palette.', logger='current',
                      level=logging.WARNING)
        meta = {k: CityscapesDataset.METAINFO[k]
                for k in ('classes', 'palette')}
    return meta
