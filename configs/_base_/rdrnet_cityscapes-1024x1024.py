# RDRNet on Cityscapes, the authors' recipe (gyyang23/RDRNet, root configs
# rdrnet-*_2xb6-120k_cityscapes-1024x1024.py): 1024x1024 crops, batch 6 per
# GPU on 2 GPUs (12), SGD 0.01 with poly decay over 120k iterations, OHEM
# cross-entropy on the main (1.0) and auxiliary (0.4) logits with the
# Cityscapes class weights, no ImageNet pretraining. MMSeg's data set and
# runtime bases; the variants change only the widths and block counts.
# The model dict is the authors' key for key: their checkpoints record it
# (meta['cfg']) and load only into the same structure.
_base_ = [
    'mmseg::_base_/datasets/cityscapes_1024x1024.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['repvgg_seg'], allow_failed_imports=False)

# from https://github.com/openseg-group/OCNet.pytorch/issues/14 (MIT), as
# in MMSeg's DDRNet/PIDNet configs
class_weight = [
    0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786,
    1.0023, 0.9539, 0.9843, 1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529,
    1.0507
]
crop_size = (1024, 1024)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    size=crop_size,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='RDRNet',
        in_channels=3,
        channels=32,
        ppm_channels=128,
        num_blocks_per_stage=[4, 3, [5, 4], [5, 4], [1, 1]],
        norm_cfg=dict(type='BN', requires_grad=True, momentum=0.03, eps=0.001),
        align_corners=False),
    decode_head=dict(
        type='DDRHead',
        in_channels=32 * 4,
        channels=64,
        dropout_ratio=0.,
        num_classes=19,
        align_corners=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        loss_decode=[
            dict(type='OhemCrossEntropy', thres=0.9, min_kept=131072,
                 class_weight=class_weight, loss_weight=1.0),
            dict(type='OhemCrossEntropy', thres=0.9, min_kept=131072,
                 class_weight=class_weight, loss_weight=0.4),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# the authors wrap the train set in a ConcatDataset (a commented-out train+val
# entry for test-server runs): the same data as the plain set
train_dataloader = dict(batch_size=6, num_workers=8, persistent_workers=True)

max_iters = 120000
interval = 12000
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=0., power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=interval),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Check every image and label map of the train/val lists before the first
# iteration (as our PSPNet configs); skip it with
# --cfg-options custom_hooks.0.enabled=False
custom_hooks = [dict(type='CheckDatasetHook', nproc=8)]
randomness = dict(seed=304)
