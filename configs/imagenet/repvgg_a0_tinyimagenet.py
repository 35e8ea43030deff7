# RepVGG-A0 on the generated 4-class tiny ImageNet folder (see
# tests/tiny_imagenet.py): 64px images, 56px crops (the
# 256 -> 224 ratio), a few epochs on CPU. Used by tests/test_classification.py.
_base_ = ['./repvgg_a0_imagenet.py']

data_root = 'data/tiny_imagenet/'
max_epochs = 6
model = dict(head=dict(num_classes=4))
train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='RandomResizedCrop', scale=56, crop_ratio_range=(0.4, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadCheckedImageFromFile'),
    dict(type='ResizeEdge', scale=64, edge='short'),
    dict(type='CenterCrop', crop_size=56),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=20,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# A fixed lr: the per-256 rule would give 0.003 for 8 images, too slow for
# a few epochs from scratch (8 images per step: more steps, same compute).
optim_wrapper = dict(optimizer=dict(lr=0.05))
auto_scale_lr = dict(enable=False)
param_scheduler = dict(T_max=max_epochs, end=max_epochs)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=max_epochs))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
