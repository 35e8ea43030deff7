# PSPNet-RepVGG-B1, output stride 8, Cityscapes 512x1024, 80k iterations.
_base_ = ['./_base_/pspnet_repvgg_cityscapes-512x1024.py']
# ImageNet weights from mmpretrain's model zoo, downloaded once into
# ~/.cache/torch/hub/checkpoints (see README, "Pretrained weights")
checkpoint_file = ('https://download.openmmlab.com/mmclassification/v0/repvgg/'
                   'repvgg-B1_8xb32_in1k_20221213-d17c45e7.pth')  # noqa
model = dict(
    backbone=dict(
        arch='B1',
        init_cfg=dict(checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=2048),
    auxiliary_head=dict(in_channels=512))
