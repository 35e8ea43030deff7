"""Published Cityscapes val mIoU (single scale) of the configs we and MMSeg
ship, shown beside the measured speed: how fast is only half of it.

Keys are config file names without ``.py``. Sources: the RepVGG paper
(Ding et al., CVPR 2021, Cityscapes table: its own PSPNet recipe, not reproduced
here) for ours, the RDRNet authors' README table for our RDRNet configs, the
model zoo metafiles that ship with MMSegmentation 1.2.2
(``.mim/configs/*/metafile.yaml``) for MMSeg's. A config missing here has no
published number (shown as ``-``).
"""

#: The RepVGG paper's numbers (our configs follow its architecture).
PAPER_MIOU = {
    'pspnet_repvgg_b1g2-fast': 78.88,
    'pspnet_repvgg_b2-fast': 79.52,
    'pspnet_repvgg_b2': 80.57,
}
#: The RDRNet table of the authors' README (gyyang23/RDRNet, at 93d3b81):
#: Cityscapes val, single scale, trained on train only, no ImageNet
#: pretraining (the table's DDRNet/PIDNet rows were re-trained without it
#: too, 1.5-2.3 points below MMSeg's pretrained zoo values below).
RDRNET_README_MIOU = {
    'rdrnet-s-simple_2xb6-120k_cityscapes-1024x1024': 76.7,
    'rdrnet-s_2xb6-120k_cityscapes-1024x1024': 76.8,
    'rdrnet-m_2xb6-120k_cityscapes-1024x1024': 78.8,
    'rdrnet-l_2xb6-120k_cityscapes-1024x1024': 79.6,
}
#: MMSeg's model zoo: PSPNets (512x1024 crops, 80k iterations), then the
#: real-time networks. DDRNet-23: 79.99 in the metafile; MMSeg's DDRNet
#: README table says 79.53.
MMSEG_ZOO_MIOU = {
    'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024': 74.87,
    'pspnet_r50-d8_4xb2-80k_cityscapes-512x1024': 78.55,
    'pspnet_r101-d8_4xb2-80k_cityscapes-512x1024': 79.76,
    'pidnet-s_2xb6-120k_1024x1024-cityscapes': 78.74,
    'pidnet-m_2xb6-120k_1024x1024-cityscapes': 80.22,
    'pidnet-l_2xb6-120k_1024x1024-cityscapes': 80.89,
    'ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024': 77.84,
    'ddrnet_23_in1k-pre_2xb6-120k_cityscapes-1024x1024': 79.99,
    'bisenetv1_r18-d32-in1k-pre_4xb8-160k_cityscapes-1024x1024': 75.16,
    'bisenetv1_r18-d32-in1k-pre_4xb4-160k_cityscapes-1024x1024': 74.37,
    'bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024': 74.44,
    'bisenetv2_fcn_4xb8-160k_cityscapes-1024x1024': 75.76,
    'bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024': 73.21,
    'stdc1_in1k-pre_4xb12-80k_cityscapes-512x1024': 74.94,
    'stdc1_4xb12-80k_cityscapes-512x1024': 71.82,
    'stdc2_in1k-pre_4xb12-80k_cityscapes-512x1024': 76.67,
    'stdc2_4xb12-80k_cityscapes-512x1024': 73.15,
}
#: What each source's numbers are, for the reader of a table that mixes
#: them (the two real-time tables differ by 1.5-2.3 points per model).
SOURCE_NOTES = {
    'RepVGG paper': 'RepVGG paper: its own PSPNet recipe (ImageNet-'
                    'pretrained backbones), not reproduced here',
    'RDRNet README': 'RDRNet README table (gyyang23/RDRNet): trained from '
                     'scratch, no ImageNet; the same table gives the peers '
                     'trained so: PIDNet-S 76.4, PIDNet-M 78.2, PIDNet-L '
                     '78.8, DDRNet-23-slim 76.3, DDRNet-23 78.0',
    'MMSeg zoo': 'MMSeg 1.2.2 model zoo: ImageNet-pretrained where the '
                 'config name says in1k-pre (PIDNet loads ImageNet weights '
                 'too), so not comparable point for point with the RDRNet '
                 'table',
}
#: config name -> (mIoU, source)
PUBLISHED_MIOU = {
    **{name: (miou, 'RepVGG paper') for name, miou in PAPER_MIOU.items()},
    **{name: (miou, 'RDRNet README') for name, miou in
       RDRNET_README_MIOU.items()},
    **{name: (miou, 'MMSeg zoo') for name, miou in MMSEG_ZOO_MIOU.items()},
}


def published_miou(config_name):
    """``(mIoU, source)`` of a config name, or ``(None, None)``."""
    return PUBLISHED_MIOU.get(config_name, (None, None))
