"""Load weights strictly: a mismatch is an error that names what differs.

Two entry points: :func:`load_weights` for a whole trained model (test,
deploy, resume checks) and :func:`load_pretrained` for a RepVGG backbone's
``init_cfg`` (ImageNet weights in any layout, heads ignored). Training-form
weights are fused on the fly for a deploy-form model; fused weights cannot
be un-fused, so they are refused for a training-form model.
"""
import logging

from mmengine.logging import print_log

from .config_diff import config_differences, trained_model_cfg
from .layouts import (CheckpointMismatch, arch_label, infer_arch,
                      is_deploy_form)
from .reading import backbone_arch, read_backbone_state, state_dict_of


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
    twin = type(model)(**model.build_args)
    warn_unmatched_keys(load_matching_shapes(twin, state, 'training-form'),
                        model, source)
    twin.eval().switch_to_deploy()
    return twin.state_dict()


def shape_differences(model, state):
    """``'key: checkpoint (..) vs model (..)'`` for each tensor of ``state``
    whose shape differs from ``model``'s: the one strict-shape check."""
    own = model.state_dict()
    return [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in state.items() if k in own and own[k].shape != v.shape]


def refuse_non_float(model, state, what):
    """Integer or bool tensors where the model has float ones (a quantized
    or corrupted file): ``load_state_dict`` would cast them silently into
    weights that only look trained."""
    own = model.state_dict()
    for key, value in state.items():
        if key in own and own[key].is_floating_point() and \
                not value.is_floating_point():
            raise CheckpointMismatch(
                f'{what}: {key} holds {str(value.dtype)[6:]} values where '
                'the model has float weights; use a float checkpoint (this '
                'project does not load quantized or integer weights)')


def load_matching_shapes(model, state, what):
    """``load_state_dict(strict=False)``, refusing tensors whose shapes
    differ (those would be another arch's weights); returns the missing and
    unexpected keys for the caller to judge."""
    bad = shape_differences(model, state)
    if bad:
        raise CheckpointMismatch(
            f'{what} weights are for RepVGG-{infer_arch(state)} but the model '
            f'is RepVGG-{model.arch_name}; {len(bad)} tensors differ in '
            f'shape, e.g. {bad[0]}. Use the checkpoint of the same arch.')
    refuse_non_float(model, state, f'{what} weights')
    return model.load_state_dict(state, strict=False)


def model_kind(state):
    """What a flat state dict is the weights of: ``'segmentor'``
    (``decode_head.*``), ``'classifier'`` (``head.*``; official RepVGG
    files: ``linear.*``), ``'backbone'`` (only our bare RepVGG keys, as
    tools/extract_backbone.py writes them) or None."""
    if any(key.startswith('decode_head.') for key in state):
        return 'segmentor'
    if any(key.startswith(('head.', 'linear.')) for key in state):
        return 'classifier'
    if state and all(key.startswith(('stem.', 'stage_')) for key in state):
        return 'backbone'
    return None


#: ``kind: (what the checkpoint holds, what to do)`` for a checkpoint of
#: one kind of model given for another.
KINDS = {
    'classifier': (
        "an ImageNet classifier's weights", 'give a checkpoint trained with '
        'a segmentation config; to start a segmentor from this classifier, '
        'set model.backbone.init_cfg.checkpoint to it (README, "Pretrained '
        'weights")'),
    'segmentor': (
        "a segmentor's weights", 'give a checkpoint trained with a '
        'classification config (configs/imagenet/), or test this one with '
        'its segmentation config'),
    'backbone': (
        'a bare RepVGG backbone', 'start a training from it with '
        'model.backbone.init_cfg.checkpoint, and give a trained checkpoint '
        'here'),
}


def load_weights(model, checkpoint, path, config_name):
    """Load a whole-model ``checkpoint`` into ``model``, refusing any
    mismatch: arch, form, the model config it was trained with, shapes,
    keys (MMSeg's ``init_model`` loads what fits and only warns, so a
    checkpoint of another arch would silently predict noise)."""
    state, own = state_dict_of(checkpoint, path), model.state_dict()
    where = f'{path} does not match {config_name}'
    found, expected = model_kind(state), model_kind(own)
    if found != expected and None not in (found, expected):
        holds, advice = KINDS[found]
        raise CheckpointMismatch(f'{where}: the checkpoint holds {holds}, '
                                 f'the config builds a {expected}: {advice}')
    ckpt_arch, model_arch = backbone_arch(state), backbone_arch(own)
    if ckpt_arch != model_arch:
        raise CheckpointMismatch(
            f'{where}: the checkpoint holds {arch_label(ckpt_arch)}, the '
            f'config builds {arch_label(model_arch)}')
    if is_deploy_form(state) and not is_deploy_form(own):
        raise CheckpointMismatch(f'{where}: the checkpoint is fused, the config '
                          'builds the training form; use the deploy config '
                          'that tools/fuse.py wrote next to it')
    if is_deploy_form(own) and not is_deploy_form(state):
        raise CheckpointMismatch(f'{where}: the checkpoint is in training form, the '
                          'config builds the fused model; use the training '
                          'config (fuse on load) or fuse it with '
                          'tools/fuse.py')
    trained = trained_model_cfg(checkpoint)
    if trained is not None:
        differ = list(config_differences(trained,
                                          model.cfg.to_dict()['model']))
        if differ:
            raise CheckpointMismatch(f'{where}: it was trained with another model '
                              f'config, {differ[0]} ({len(differ)} settings '
                              'differ)')
    shapes = shape_differences(model, state)
    if shapes:
        raise CheckpointMismatch(f'{where}: {len(shapes)} tensors differ in '
                                 f'shape, e.g. {shapes[0]}')
    refuse_non_float(model, state, where)
    result = model.load_state_dict(state, strict=False)
    for kind, keys in (('lacks', result.missing_keys),
                       ('has unknown', result.unexpected_keys)):
        if keys:
            raise CheckpointMismatch(f'{where}: the checkpoint {kind} {len(keys)} '
                              f'keys, e.g. {keys[0]}')


def load_pretrained(model, filename, prefix=None):
    """Load ``filename`` into the RepVGG ``model``; warn loudly about keys
    that did not match. ``prefix`` selects a sub-module's weights (e.g.
    ``'backbone.'``) in the MMEngine ``Pretrained`` convention."""
    state, others = read_backbone_state(filename, prefix)
    checkpoint_deploy = is_deploy_form(state)
    if checkpoint_deploy and not model.deploy:
        raise CheckpointMismatch(
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
        warn_unmatched_keys(load_matching_shapes(model, state, 'pretrained'),
                            model, filename)
    print_log(f'RepVGG-{model.arch_name}: loaded {len(state)} tensors from '
              f'{filename} ({form}); ignored {len(others)} non-backbone keys',
              logger='current')
