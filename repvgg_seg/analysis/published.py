"""Published Cityscapes val mIoU (single scale) of the configs we and MMSeg
ship, shown beside the measured speed: how fast is only half of it.

Keys are config file names without ``.py``. Sources: the RepVGG paper
(Ding et al., CVPR 2021, Cityscapes table: its own PSPNet recipe, not reproduced
here) for ours, the model zoo metafiles that ship with MMSegmentation 1.2.2
(``.mim/configs/*/metafile.yaml``) for MMSeg's. A config missing here has no
published number (shown as ``-``).
"""

#: config name -> (mIoU, source)
PUBLISHED_MIOU = {
    # ours (paper numbers; our configs follow its architecture)
    'pspnet_repvgg_b1g2-fast': (78.88, 'RepVGG paper'),
    'pspnet_repvgg_b2-fast': (79.52, 'RepVGG paper'),
    'pspnet_repvgg_b2': (80.57, 'RepVGG paper'),
    # MMSeg PSPNets, 512x1024 crops, 80k iterations
    'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024': (74.87, 'MMSeg zoo'),
    'pspnet_r50-d8_4xb2-80k_cityscapes-512x1024': (78.55, 'MMSeg zoo'),
    'pspnet_r101-d8_4xb2-80k_cityscapes-512x1024': (79.76, 'MMSeg zoo'),
    # MMSeg real-time networks
    'pidnet-s_2xb6-120k_1024x1024-cityscapes': (78.74, 'MMSeg zoo'),
    'pidnet-m_2xb6-120k_1024x1024-cityscapes': (80.22, 'MMSeg zoo'),
    'pidnet-l_2xb6-120k_1024x1024-cityscapes': (80.89, 'MMSeg zoo'),
    'ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024':
    (77.84, 'MMSeg zoo'),
    # 79.99 in the metafile; MMSeg's DDRNet README table says 79.53
    'ddrnet_23_in1k-pre_2xb6-120k_cityscapes-1024x1024': (79.99, 'MMSeg zoo'),
    'bisenetv1_r18-d32-in1k-pre_4xb8-160k_cityscapes-1024x1024':
    (75.16, 'MMSeg zoo'),
    'bisenetv1_r18-d32-in1k-pre_4xb4-160k_cityscapes-1024x1024':
    (74.37, 'MMSeg zoo'),
    'bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024': (74.44, 'MMSeg zoo'),
    'bisenetv2_fcn_4xb8-160k_cityscapes-1024x1024': (75.76, 'MMSeg zoo'),
    'bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024': (73.21, 'MMSeg zoo'),
    'stdc1_in1k-pre_4xb12-80k_cityscapes-512x1024': (74.94, 'MMSeg zoo'),
    'stdc1_4xb12-80k_cityscapes-512x1024': (71.82, 'MMSeg zoo'),
    'stdc2_in1k-pre_4xb12-80k_cityscapes-512x1024': (76.67, 'MMSeg zoo'),
    'stdc2_4xb12-80k_cityscapes-512x1024': (73.15, 'MMSeg zoo'),
}


def published_miou(config_name):
    """``(mIoU, source)`` of a config name, or ``(None, None)``."""
    return PUBLISHED_MIOU.get(config_name, (None, None))
