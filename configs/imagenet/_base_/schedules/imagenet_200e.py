# The paper's longer recipe for the heavy models (RepVGG-B2g4, B3*): 5
# warm-up epochs, then cosine annealing to epoch 200.
_base_ = ['./imagenet_120e.py']
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.25,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=195,
        by_epoch=True,
        begin=5,
        end=200,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=200)
