# PSPNet-RepVGG-A0 on the built-in Cityscapes-format mini set (data/citymini,
# made by tools/make_citymini.py + tools/prepare_cityscapes.py). Small crops,
# thinner heads, output stride 16 (only stage 4 dilated) and a short schedule
# so it trains from scratch on 2 CPU cores in minutes; the Cityscapes configs
# run the same backbone at output stride 8.
_base_ = ['./pspnet_repvgg_a0.py']

data_root = 'data/citymini/'
crop_size = (128, 256)
scale = (320, 160)  # the 256x512 scenes at 5/8 size
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(strides=(2, 2, 2, 1), dilations=(1, 1, 1, 2),
                  init_cfg=None),
    decode_head=dict(channels=128),
    auxiliary_head=dict(channels=64))

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
    batch_size=4,
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
# One thread for the model, so the result does not depend on the machine's
# core count or OMP_NUM_THREADS (a convolution's sums split across threads
# round differently), and the one data worker has the second core: on 2
# cores shared with other jobs this is also several times faster than 2
# threads, which spin waiting for each other.
env_cfg = dict(cudnn_benchmark=False, torch_num_threads=1)
# Seeded: a rerun on the same machine gives the same weights (the CPU ops of
# this model are deterministic; deterministic=True only makes the first
# iterations several times slower). Another CPU type may round differently:
# README, "Quick start", gives the spread.
randomness = dict(seed=0, deterministic=False)
