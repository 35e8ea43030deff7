# PSPNet with a RepVGG backbone at output stride 8 on Cityscapes, following
# MMSegmentation's PSPNet-R50-D8 512x1024 80k recipe: its own model, dataset,
# runtime and schedule bases, with only the backbone (and channels) replaced.
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
custom_imports = dict(imports=['repvgg_seg'], allow_failed_imports=False)

crop_size = (512, 1024)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='RepVGG',
        arch='B2',
        out_indices=(0, 1, 2, 3),
        # output stride 8: stages 3 and 4 keep stride 1 and dilate by 2 / 4
        strides=(2, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        norm_cfg=norm_cfg,
        norm_eval=False,
        # ImageNet initialisation: mmpretrain's weights of the arch (each
        # config names its URL; downloaded once, cached in
        # ~/.cache/torch/hub/checkpoints). The official RepVGG release files
        # (training form) load too:
        #   --cfg-options model.backbone.init_cfg.checkpoint=PATH
        # or train from scratch with --cfg-options model.backbone.init_cfg=None
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'repvgg/repvgg-B2_8xb32_in1k_20221213-d8b420ef.pth')),
    decode_head=dict(in_channels=2560, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=640, norm_cfg=norm_cfg))
# Check every image and label map of the train/val lists before the first
# iteration (tools/check_dataset.py runs the same check on its own); skip
# it with --cfg-options custom_hooks.0.enabled=False
custom_hooks = [dict(type='CheckDatasetHook', nproc=8),
                # --amp trains in channels_last (NHWC), the layout of
                # cuDNN's fp16/bf16 tensor-core convs: about 2x faster.
                # No-op in fp32 and on the CPU.
                dict(type='ChannelsLastHook')]
# Enough workers to keep up with ~0.05 s iterations (2048x1024 PNG decode,
# random resize up to 2x, crop, photometric distortion per image).
train_dataloader = dict(num_workers=8, persistent_workers=True,
                        pin_memory=True)
