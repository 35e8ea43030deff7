# RepVGG-A2 on ImageNet-1k, 120 epochs.
_base_ = ['./repvgg_a0_imagenet.py']
model = dict(backbone=dict(arch='A2'))
