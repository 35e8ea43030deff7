# RDRNet-S-Simple on the built-in Cityscapes-format mini set (data/citymini,
# made by tools/make_citymini.py + tools/prepare_cityscapes.py), with the
# data, iterations, optimizer and seed of pspnet_repvgg_a0_citymini.py, so
# the two train side by side from scratch on 2 CPU cores in minutes. The
# network is the Cityscapes one; OHEM keeps at least the same share of the
# batch's pixels as there (131072 of 6 x 1024 x 1024, i.e. 1/48).
_base_ = ['./rdrnet-s-simple_2xb6-120k_cityscapes-1024x1024.py']

data_root = 'data/citymini/'
crop_size = (128, 256)
scale = (320, 160)  # the 256x512 scenes at 5/8 size
batch_size = 4
min_kept = 131072 * batch_size * 128 * 256 // (6 * 1024 * 1024)
class_weight = {{_base_.class_weight}}
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(loss_decode=[
        dict(type='OhemCrossEntropy', thres=0.9, min_kept=min_kept,
             class_weight=class_weight, loss_weight=1.0),
        dict(type='OhemCrossEntropy', thres=0.9, min_kept=min_kept,
             class_weight=class_weight, loss_weight=0.4),
    ]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(0.75, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
max_iters = 480
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=160, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0, deterministic=False)
