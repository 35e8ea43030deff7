"""Build a model from its config and load a checkpoint that must fit it.

MMSeg's ``init_model`` loads with ``strict=False`` and only warns, so a
checkpoint of another arch gives a model that silently predicts noise. Here
a mismatch is an error that names what differs: arch, form, the model
config the checkpoint was trained with (strides and dilations change no
tensor shape), shapes, keys.
"""
import ast
import copy
import logging
import os.path as osp

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import CheckpointLoader

from mmseg.datasets import CityscapesDataset
from mmseg.registry import MODELS
from ..compat import CheckpointError, atomic_torch_save
from ..models.backbones.repvgg_checkpoint import (PretrainedMismatchError,
                                                  infer_arch, is_deploy_form,
                                                  to_backbone_keys,
                                                  unwrap_state_dict)
from ..utils.config import ConfigError, read_config
from ..utils.errors import UserError


#: Model settings that change how a network was initialised or trained, or
#: how it is run, but not the trained network itself.
NOT_STRUCTURAL = frozenset({
    '_scope_', 'init_cfg', 'pretrained', 'train_cfg', 'test_cfg',
    'data_preprocessor', 'loss_decode', 'loss', 'sampler', 'with_cp',
    'frozen_stages', 'norm_eval', 'requires_grad', 'dropout_ratio',
    'label_smoothing', 'mixup_alpha'
})


class DeployError(UserError, ValueError):
    """A config, checkpoint or output path that cannot be used; the message
    is one line that says what is wrong and what to do."""


def load_config(config):
    """A :class:`Config` from a path (or a copy of a Config)."""
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if not osp.isfile(config):
        raise DeployError(f'config {config} does not exist')
    try:
        return read_config(config)
    except ConfigError as exc:
        raise DeployError(str(exc)) from None


def build_model(cfg):
    """Build ``cfg.model`` for inference as MMSeg's ``init_model`` does, for
    segmentors and classifiers alike: eval mode, ``model.cfg`` keeps the
    config (the test pipeline is read from it)."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    return model.eval()


def read_checkpoint(path):
    """The checkpoint dict, loaded safely (weights only) on the CPU."""
    try:
        return CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except (FileNotFoundError, CheckpointError) as exc:
        raise DeployError(str(exc)) from None


def state_dict_of(checkpoint, path):
    try:
        return unwrap_state_dict(checkpoint)
    except PretrainedMismatchError as exc:
        raise DeployError(f'{path}: {exc}') from None


def is_fused_checkpoint(checkpoint, path):
    """Fused by tools/fuse.py, or any RepVGG weights in deploy form."""
    return bool(checkpoint.get('meta', {}).get('fused')) or is_deploy_form(
        state_dict_of(checkpoint, path))


def backbone_arch(state):
    """RepVGG arch name of a model's or checkpoint's state dict."""
    return infer_arch(to_backbone_keys(state)[0])


def _literal(node):
    """Value of a config expression made of literals and ``dict(...)``."""
    if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == \
            'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v)
                for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)  # ValueError for anything else


def trained_model_cfg(checkpoint):
    """The ``model`` config the Runner saved in ``meta['cfg']``, read
    without running that text (it is code, from the checkpoint file)."""
    text = checkpoint.get('meta', {}).get('cfg')
    try:
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and [
                    getattr(t, 'id', None) for t in node.targets] == ['model']:
                return _literal(node.value)
    except (SyntaxError, TypeError, ValueError):
        pass
    return None


def _config_differences(trained, current, path='model'):
    """``'key: checkpoint A vs config B'`` for each structural setting that
    differs (SyncBN and BN count as one: same weights)."""
    if isinstance(trained, dict) and isinstance(current, dict):
        for key in sorted(set(trained) | set(current), key=str):
            if key not in NOT_STRUCTURAL:
                yield from _config_differences(
                    trained.get(key), current.get(key), f'{path}.{key}')
    elif isinstance(trained, (list, tuple)) and isinstance(
            current, (list, tuple)) and len(trained) == len(current) and any(
                isinstance(item, dict) for item in current):
        for i, (a, b) in enumerate(zip(trained, current)):
            yield from _config_differences(a, b, f'{path}[{i}]')
    elif _comparable(trained) != _comparable(current):
        yield (f'{path}: checkpoint {_comparable(trained)} vs config '
               f'{_comparable(current)}')


def _comparable(value):
    """Tuples as lists (the saved text and the config differ there), and
    SyncBN as BN (same weights)."""
    if isinstance(value, (list, tuple)):
        return [_comparable(item) for item in value]
    return 'BN' if value == 'SyncBN' else value


def load_weights(model, checkpoint, path, config_name):
    """Load ``checkpoint`` into ``model``, refusing any mismatch."""
    state, own = state_dict_of(checkpoint, path), model.state_dict()
    where = f'{path} does not match {config_name}'
    ckpt_arch, model_arch = backbone_arch(state), backbone_arch(own)
    if ckpt_arch != model_arch:
        raise DeployError(f'{where}: the checkpoint holds RepVGG-{ckpt_arch}'
                          f', the config builds RepVGG-{model_arch}')
    if is_deploy_form(state) and not is_deploy_form(own):
        raise DeployError(f'{where}: the checkpoint is fused, the config '
                          'builds the training form; use the deploy config '
                          'that tools/fuse.py wrote next to it')
    if is_deploy_form(own) and not is_deploy_form(state):
        raise DeployError(f'{where}: the checkpoint is in training form, the '
                          'config builds the fused model; use the training '
                          'config (fuse on load) or fuse it with '
                          'tools/fuse.py')
    trained = trained_model_cfg(checkpoint)
    if trained is not None:
        differ = list(_config_differences(trained,
                                          model.cfg.to_dict()['model']))
        if differ:
            raise DeployError(f'{where}: it was trained with another model '
                              f'config, {differ[0]} ({len(differ)} settings '
                              'differ)')
    shapes = [f'{k}: checkpoint {tuple(v.shape)} vs config '
              f'{tuple(own[k].shape)}' for k, v in state.items()
              if k in own and own[k].shape != v.shape]
    if shapes:
        raise DeployError(f'{where}: {len(shapes)} tensors differ in shape, '
                          f'e.g. {shapes[0]}')
    result = model.load_state_dict(state, strict=False)
    for kind, keys in (('lacks', result.missing_keys),
                       ('has unknown', result.unexpected_keys)):
        if keys:
            raise DeployError(f'{where}: the checkpoint {kind} {len(keys)} '
                              f'keys, e.g. {keys[0]}')


def dataset_meta_of(checkpoint, model):
    """Class names and palette saved by the Runner; for a segmentor saved
    without them, Cityscapes' (this project's data set)."""
    meta = checkpoint.get('meta', {}).get('dataset_meta')
    if meta is None and hasattr(model, 'decode_head'):
        print_log('The checkpoint has no dataset_meta: using the Cityscapes '
                  'classes and palette.', logger='current',
                  level=logging.WARNING)
        meta = {k: CityscapesDataset.METAINFO[k]
                for k in ('classes', 'palette')}
    return meta


def save_checkpoint(checkpoint, path):
    """``torch.save`` that never leaves a partial file under ``path``."""
    atomic_torch_save(checkpoint, path)
