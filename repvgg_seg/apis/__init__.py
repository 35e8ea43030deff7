"""What the tools and users call: one entry point for each job."""
from ..analysis import (DEFAULT_TRAINING_VARIANTS, TRAINING_VARIANTS,
                        load_training_result, report_training_benchmark,
                        run_benchmark, run_training_benchmark,
                        run_video_benchmark, update_arch_table)
from ..datasets import generate_citymini, make_driving_video, prepare_cityscapes
from ..deploy import SegPredictor, fuse_checkpoint
from ..deploy.video import FPS_RANGE as VIDEO_FPS_RANGE
from ..models import convert_checkpoint, extract_backbone
from .classification import classify
from .data import check_data
from .export import export_onnx
from .image_demo import segment_images
from .inference import (check_device, inference_model, inference_segmentor,
                        init_model, init_segmentor)
from .video import format_report, run_video_demo
from .runner import (AMP_DTYPES, build_runner, check_checkpoint,
                     configure_test, enable_amp, load_runner_config, test,
                     train)

__all__ = [
    'AMP_DTYPES', 'DEFAULT_TRAINING_VARIANTS', 'TRAINING_VARIANTS',
    'VIDEO_FPS_RANGE',
    'load_training_result', 'report_training_benchmark',
    'run_training_benchmark', 'format_report', 'run_video_benchmark',
    'run_video_demo',
    'SegPredictor', 'build_runner', 'check_checkpoint', 'check_data',
    'check_device',
    'classify', 'configure_test', 'convert_checkpoint', 'enable_amp',
    'export_onnx', 'extract_backbone', 'fuse_checkpoint',
    'generate_citymini', 'inference_model', 'inference_segmentor',
    'init_model', 'init_segmentor', 'load_runner_config',
    'make_driving_video', 'prepare_cityscapes', 'run_benchmark',
    'segment_images', 'test', 'train', 'update_arch_table'
]
