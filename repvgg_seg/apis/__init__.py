from .inference import inference_segmentor, init_segmentor
from .video import format_report, run_video_demo
from .runner import (build_runner, check_checkpoint, configure_test,
                     enable_amp, load_config)

__all__ = [
    'build_runner', 'check_checkpoint', 'configure_test', 'enable_amp',
    'load_config', 'format_report', 'inference_segmentor', 'init_segmentor',
    'run_video_demo'
]
