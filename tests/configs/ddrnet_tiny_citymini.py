# MMSeg's DDRNet recipe (its backbone, DDRHead, two OHEM cross-entropy losses
# with the Cityscapes class weights) at tiny widths on the tiny test crops:
# DDRNet/RDRNet training through tools/train.py in seconds. min_kept stays
# MMSeg's 131072, more than the pixels of a batch here (2 x 64 x 128).
_base_ = ['./pspnet_repvgg_tiny_citymini.py']

class_weight = [
    0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786,
    1.0023, 0.9539, 0.9843, 1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529,
    1.0507
]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DDRNet',
        in_channels=3,
        channels=8,
        ppm_channels=16,
        norm_cfg=norm_cfg,
        align_corners=False,
        init_cfg=None),
    decode_head=dict(
        _delete_=True,
        type='DDRHead',
        in_channels=8 * 4,
        channels=16,
        dropout_ratio=0.,
        num_classes=19,
        align_corners=False,
        norm_cfg=norm_cfg,
        loss_decode=[
            dict(type='OhemCrossEntropy', thres=0.9, min_kept=131072,
                 class_weight=class_weight, loss_weight=1.0),
            dict(type='OhemCrossEntropy', thres=0.9, min_kept=131072,
                 class_weight=class_weight, loss_weight=0.4),
        ]),
    auxiliary_head=None)
# MMSeg's DDRNet optimizer
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005))
