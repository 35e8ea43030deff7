"""Global average pooling + one linear layer, the RepVGG ImageNet head."""
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmseg.registry import MODELS
from ...utils.errors import InvalidArgument


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
