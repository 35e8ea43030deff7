"""What runs a trained model: exact fusion, the fast GPU path, the shared
inference path (predictor), video, ONNX export."""
from .fuse import (DeployError, deploy_config, fuse_checkpoint, fuse_model,
                   is_deploy_config)
from .predictor import SegPredictor, as_bgr_image
from .trained_model import load_trained_model
from .video import FrameSource, VideoError, segment_video

__all__ = [
    'DeployError', 'FrameSource', 'SegPredictor', 'VideoError',
    'as_bgr_image', 'deploy_config', 'fuse_checkpoint', 'fuse_model',
    'is_deploy_config', 'load_trained_model', 'segment_video'
]
