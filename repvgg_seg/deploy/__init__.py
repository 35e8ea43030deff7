"""Deployment: exact fusion of trained models, the shared inference path
and real-time inference on videos."""
from .files import atomic_output
from .fuse import deploy_config, fuse_checkpoint, fuse_model
from .loading import DeployError
from .predictor import SegPredictor, as_bgr_image
from .video import FrameSource, VideoError, segment_video

__all__ = [
    'DeployError', 'FrameSource', 'SegPredictor', 'VideoError',
    'as_bgr_image', 'atomic_output', 'deploy_config', 'fuse_checkpoint',
    'fuse_model', 'segment_video'
]
