"""What the tools and users call: one entry point for each job."""
from ..datasets import generate_citymini, make_driving_video, prepare_cityscapes
from ..deploy import SegPredictor, fuse_checkpoint
from ..models import convert_checkpoint, extract_backbone
from .data import check_data
from .export import export_onnx
from .image_demo import segment_images
from .inference import (inference_model, inference_segmentor, init_model,
                        init_segmentor)
from .runner import (build_runner, check_checkpoint, configure_test,
                     enable_amp, load_runner_config, test, train)

__all__ = [
    'SegPredictor', 'build_runner', 'check_checkpoint', 'check_data',
    'configure_test', 'convert_checkpoint', 'enable_amp',
    'export_onnx', 'extract_backbone', 'fuse_checkpoint',
    'generate_citymini', 'inference_model', 'inference_segmentor',
    'init_model', 'init_segmentor', 'load_runner_config',
    'make_driving_video', 'prepare_cityscapes', 'segment_images', 'test',
    'train'
]
