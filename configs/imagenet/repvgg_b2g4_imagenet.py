# RepVGG-B2g4 on ImageNet-1k with the paper's "extra aug." recipe: 200
# epochs, label smoothing 0.1 and mixup 0.2 (AutoAugment is not included).
_base_ = [
    './_base_/models/repvgg.py',
    './_base_/datasets/imagenet.py',
    './_base_/schedules/imagenet_200e.py',
    './_base_/default_runtime.py',
]
model = dict(
    backbone=dict(arch='B2g4'), head=dict(label_smoothing=0.1),
    mixup_alpha=0.2)
