"""ImageNet classifier: a MODELS backbone, :class:`LinearClsHead`, mixup.

Any RepVGG checkpoint layout loads into it through ``load_state_dict`` (so
``tools/test.py``'s ``load_from`` and ``tools/classify.py`` take official and
mmpretrain files as they are): the keys are renamed on the way in, and the
backbone takes the form of the weights (see :meth:`_load_from_state_dict`).
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel, BaseModule
from mmengine.structures import BaseDataElement

from mmseg.registry import MODELS
from ..models.checkpoints import (fuse_training_weights, is_deploy_form,
                                  to_backbone_keys, unwrap_state_dict)
from ..utils.errors import InvalidArgument

_OFFICIAL_HEAD = re.compile(r'^linear\.')


@MODELS.register_module()
class LinearClsHead(BaseModule):
    """Pool the last backbone feature map and classify it with ``fc``.

    The layer is named ``fc`` so mmpretrain's ``head.fc.*`` keys (and the
    official ``linear.*``, renamed by :class:`ImageClassifier`) load as is.

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the last feature map.
        label_smoothing (float): moves this much of the target mass to a
            uniform distribution (the paper's "extra aug." recipe uses 0.1).
    """

    def __init__(self, num_classes, in_channels, label_smoothing=0.,
                 init_cfg=None):
        super().__init__(init_cfg)
        if num_classes < 1:
            raise InvalidArgument(
                f'num_classes must be positive, got {num_classes}')
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats):
        """Logits from the backbone's outputs (a tuple; the last is used)."""
        return self.fc(F.adaptive_avg_pool2d(feats[-1], 1).flatten(1))

    def loss(self, logits, targets):
        """Cross-entropy; ``targets`` are class indices or, after mixup,
        class probabilities (``F.cross_entropy`` smooths either)."""
        return F.cross_entropy(logits, targets,
                               label_smoothing=self.label_smoothing)


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """``backbone -> head`` with MMEngine's three forward modes.

    Data samples carry ``gt_label`` (a scalar tensor); predictions add
    ``pred_score`` (softmax) and ``pred_label``.

    Args:
        backbone (dict): a MODELS config, e.g. ``dict(type='RepVGG',
            arch='A0', out_indices=(3, ))``.
        head (dict): a :class:`LinearClsHead` config; ``in_channels``
            defaults to the channels of the backbone's last output.
        mixup_alpha (float): mix image pairs with ``lam ~ Beta(a, a)`` in
            training (``loss`` only); 0 turns mixup off.
        data_preprocessor (dict): e.g. MMEngine's ``ImgDataPreprocessor``
            (BGR -> RGB, mean/std, batching).
    """

    def __init__(self, backbone, head, mixup_alpha=0.,
                 data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        head = dict(head)
        if 'in_channels' not in head:
            head['in_channels'] = self.backbone.out_channels[
                self.backbone.out_indices[-1]]
        self.head = MODELS.build(head)
        self.mixup_alpha = mixup_alpha
        # Set when loading fused weights switched the backbone to deploy
        # form: the optimizer (built earlier) would miss the new parameters.
        self._fused_on_load = False

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.head(self.backbone(inputs))
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, '
                           'predict and tensor mode')

    def loss(self, inputs, data_samples):
        if self._fused_on_load:
            raise RuntimeError(
                'the backbone was switched to deploy form to take fused '
                '(deploy-form) weights, which cannot be trained as RepVGG. '
                'Fine-tune from the training-form checkpoint instead, or '
                'train the plain network with model.backbone.deploy=True.')
        targets = torch.stack([s.gt_label for s in data_samples]).to(
            inputs.device)
        if self.mixup_alpha > 0:
            inputs, targets = self._mixup(inputs, targets)
        return dict(loss=self.head.loss(self(inputs), targets))

    def _mixup(self, inputs, labels):
        """Mix each image with a random partner; targets become the same
        mixture of the two one-hot labels (Zhang et al., 2018)."""
        alpha = torch.tensor(float(self.mixup_alpha))
        lam = torch.distributions.Beta(alpha, alpha).sample().item()
        perm = torch.randperm(inputs.size(0), device=inputs.device)
        one_hot = F.one_hot(labels, self.head.num_classes).to(inputs.dtype)
        return (lam * inputs + (1 - lam) * inputs[perm],
                lam * one_hot + (1 - lam) * one_hot[perm])

    def predict(self, inputs, data_samples=None):
        scores = F.softmax(self(inputs), dim=1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(scores))]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax()
        return data_samples

    def switch_to_deploy(self):
        """Fuse the backbone's blocks (exact in eval mode); a backbone
        without a fused form (a ResNet) stays as it is."""
        if hasattr(self.backbone, 'switch_to_deploy'):
            self.backbone.switch_to_deploy()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Adopt foreign layouts before the usual loading.

        Official (``stage0.rbr_dense...``, ``linear.*``) and mmpretrain keys
        are renamed to ours in ``state_dict`` in place (children read it
        after this). Fused weights switch a training-form backbone to deploy
        form (they cannot be un-fused), so ``tools/test.py`` evaluates
        ``RepVGG-*-deploy.pth`` with the usual config; training-form weights
        into a deploy-form backbone are fused on the fly.
        """
        local = unwrap_state_dict({
            key[len(prefix):]: state_dict.pop(key)
            for key in [k for k in state_dict if k.startswith(prefix)]
        })
        backbone, others = to_backbone_keys(local)
        if backbone and is_deploy_form(backbone) and not self.backbone.deploy:
            print_log('The checkpoint holds fused (deploy-form) RepVGG '
                      'weights: switching the backbone to deploy form.',
                      logger='current')
            self.switch_to_deploy()
            self._fused_on_load = True
        elif backbone and self.backbone.deploy and not is_deploy_form(
                backbone):
            backbone = fuse_training_weights(self.backbone, backbone)
        state_dict.update(
            {f'{prefix}backbone.{k}': v for k, v in backbone.items()})
        # ``others`` may name stripped ``backbone.*`` keys that fit no
        # RepVGG module; those are dropped like a foreign backbone's.
        state_dict.update({
            prefix + _OFFICIAL_HEAD.sub('head.fc.', k): local[k]
            for k in others if k in local
        })
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
