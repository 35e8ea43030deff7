"""Classify image files with a trained classifier from its config and
checkpoint (any layout or form :func:`init_model` loads)."""
from ..classification import classify_images
from ..utils.errors import InvalidArgument
from .inference import init_model


def classify(config, checkpoint, images, topk=5, device='cpu',
             classes_file=None):
    """``[(path, [(class name, score), ...]), ...]``, best first; names as
    :func:`repvgg_seg.classification.class_names` finds them."""
    model = init_model(config, checkpoint, device)
    if not hasattr(model, 'head'):
        raise InvalidArgument(f'{config} builds a {type(model).__name__}, '
                              'not a classifier: give a classification '
                              'config (configs/imagenet/*.py)')
    return classify_images(model, images, topk, classes_file)
