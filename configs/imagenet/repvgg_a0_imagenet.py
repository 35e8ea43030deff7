# RepVGG-A0 on ImageNet-1k, 120 epochs (paper: 72.41 top-1).
_base_ = [
    './_base_/models/repvgg.py',
    './_base_/datasets/imagenet.py',
    './_base_/schedules/imagenet_120e.py',
    './_base_/default_runtime.py',
]
