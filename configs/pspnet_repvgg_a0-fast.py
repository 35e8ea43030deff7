# The paper's "fast" variant: output stride 8 still, but only the last 5 3x3
# layers are dilated (the last 4 of stage 3 and the one of stage 4).
_base_ = ['./pspnet_repvgg_a0.py']
model = dict(backbone=dict(num_dilated_layers=5))
