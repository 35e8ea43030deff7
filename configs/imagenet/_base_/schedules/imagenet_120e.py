# The paper's recipe: SGD momentum 0.9, lr 0.1 per 256 images (scaled to the
# real total batch by auto_scale_lr), weight decay 1e-4 except on BN and
# biases as in the official code, cosine annealing over 120 epochs.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(
        bias_decay_mult=0.,
        custom_keys={
            'branch_3x3.bn': dict(decay_mult=0.),
            'branch_1x1.bn': dict(decay_mult=0.),
            'branch_norm.bias': dict(decay_mult=0.),
        }))
param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=120,
    by_epoch=True,
    begin=0,
    end=120,
    convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(enable=True, base_batch_size=256)
