# RDRNet-S: S-Simple's backbone with a head of 128 channels; published 76.8.
_base_ = ['./_base_/rdrnet_cityscapes-1024x1024.py']
model = dict(decode_head=dict(channels=128))
