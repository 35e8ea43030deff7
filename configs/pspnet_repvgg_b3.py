# PSPNet-RepVGG-B3, output stride 8, Cityscapes 512x1024, 80k iterations.
_base_ = ['./_base_/pspnet_repvgg_cityscapes-512x1024.py']
# ImageNet weights from mmpretrain's model zoo, downloaded once into
# ~/.cache/torch/hub/checkpoints (see README, "Pretrained weights")
checkpoint_file = ('https://download.openmmlab.com/mmclassification/v0/repvgg/'
                   'repvgg-B3_8xb32_in1k_20221213-927a329a.pth')  # noqa
model = dict(
    backbone=dict(
        arch='B3',
        init_cfg=dict(checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=2560),
    auxiliary_head=dict(in_channels=768))
