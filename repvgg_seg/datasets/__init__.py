"""Data sets: synthetic and real Cityscapes (ImageNet-style classification
data lives in :mod:`repvgg_seg.classification`)."""
from .citymini import (generate_citymini, make_driving_video, render_scene,
                       sample_street, street_objects)
from .check import (CheckDatasetHook, DatasetCheckError, build_datasets,
                    check_data_roots, check_dataset)
from .cityscapes_prep import (CityscapesPrepError, find_samples,
                              prepare_cityscapes)

__all__ = [
    'CheckDatasetHook', 'CityscapesPrepError', 'DatasetCheckError',
    'build_datasets', 'check_data_roots', 'check_dataset', 'find_samples',
    'generate_citymini', 'make_driving_video', 'prepare_cityscapes',
    'render_scene', 'sample_street', 'street_objects'
]
