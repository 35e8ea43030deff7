# PSPNet-RepVGG-B0, output stride 8, Cityscapes 512x1024, 80k iterations.
_base_ = ['./_base_/pspnet_repvgg_cityscapes-512x1024.py']
model = dict(
    backbone=dict(
        arch='B0',
        init_cfg=dict(checkpoint='checkpoints/RepVGG-B0-train.pth')),
    decode_head=dict(in_channels=1280),
    auxiliary_head=dict(in_channels=256))
