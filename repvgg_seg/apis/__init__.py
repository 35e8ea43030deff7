from .inference import inference_segmentor, init_segmentor
from .runner import (build_runner, check_checkpoint, configure_test,
                     enable_amp, load_config)

__all__ = [
    'build_runner', 'check_checkpoint', 'configure_test', 'enable_amp',
    'load_config', 'inference_segmentor', 'init_segmentor'
]
