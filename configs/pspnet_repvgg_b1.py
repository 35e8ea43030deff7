# PSPNet-RepVGG-B1, output stride 8, Cityscapes 512x1024, 80k iterations.
_base_ = ['./_base_/pspnet_repvgg_cityscapes-512x1024.py']
model = dict(
    backbone=dict(
        arch='B1',
        init_cfg=dict(checkpoint='checkpoints/RepVGG-B1-train.pth')),
    decode_head=dict(in_channels=2048),
    auxiliary_head=dict(in_channels=512))
