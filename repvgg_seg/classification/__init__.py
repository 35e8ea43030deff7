"""ImageNet-style classification with RepVGG backbones: the classifier and
its head, the data set and transforms, the Accuracy metric, and top-k
prediction. Importing it registers those modules under the type names the
``configs/imagenet`` configs use."""
from .classifier import ImageClassifier, LinearClsHead
from .datasets import IMAGENET_CLASSES, DatasetLayoutError, ImageNetDataset
from .metrics import Accuracy
from .predict import class_names, classify_images, top_classes
from .transforms import (ImageReadError, LoadCheckedImageFromFile,
                         PackClsInputs, RandomResizedCrop, ResizeEdge)

__all__ = [
    'IMAGENET_CLASSES', 'Accuracy', 'DatasetLayoutError', 'ImageClassifier',
    'ImageNetDataset', 'ImageReadError', 'LinearClsHead',
    'LoadCheckedImageFromFile', 'PackClsInputs', 'RandomResizedCrop',
    'ResizeEdge', 'class_names', 'classify_images', 'top_classes'
]
