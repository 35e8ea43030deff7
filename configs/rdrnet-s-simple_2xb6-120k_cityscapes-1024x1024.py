# RDRNet-S-Simple (C 32, head 64): published 76.7 val mIoU, 7.2 M params
# (fused, with the auxiliary head), 41.0 GFLOPs at 1024x2048.
_base_ = ['./_base_/rdrnet_cityscapes-1024x1024.py']
