# RepVGG-B1 on ImageNet-1k, 120 epochs.
_base_ = ['./repvgg_a0_imagenet.py']
model = dict(backbone=dict(arch='B1'))
