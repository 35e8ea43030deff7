# RDRNet-M: base width 64, head of 128 channels; published 78.8.
_base_ = ['./_base_/rdrnet_cityscapes-1024x1024.py']
model = dict(
    backbone=dict(channels=64),
    decode_head=dict(in_channels=64 * 4, channels=128))
