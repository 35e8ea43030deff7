from .image_classifier import ImageClassifier
from .linear_head import LinearClsHead

__all__ = ['ImageClassifier', 'LinearClsHead']
