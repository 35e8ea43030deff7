# RepVGG ImageNet classifier: backbone -> global average pool -> linear.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='RepVGG', arch='A0', out_indices=(3, )),
    # in_channels comes from the backbone (1280 for A0)
    head=dict(type='LinearClsHead', num_classes=1000, label_smoothing=0.),
    mixup_alpha=0.)
