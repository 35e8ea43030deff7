# RepVGG-B3 on ImageNet-1k, 200 epochs with label smoothing and mixup.
_base_ = ['./repvgg_b2g4_imagenet.py']
model = dict(backbone=dict(arch='B3'))
