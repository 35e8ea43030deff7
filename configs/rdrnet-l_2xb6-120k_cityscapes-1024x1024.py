# RDRNet-L: base width 64, more blocks, head of 256 channels; published 79.6.
_base_ = ['./_base_/rdrnet_cityscapes-1024x1024.py']
model = dict(
    backbone=dict(
        channels=64, num_blocks_per_stage=[6, 5, [7, 6], [7, 6], [2, 2]]),
    decode_head=dict(in_channels=64 * 4, channels=256))
