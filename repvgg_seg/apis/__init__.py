from .inference import inference_segmentor, init_segmentor
from .runner import (AMP_DTYPES, build_runner, check_checkpoint, configure_test,
                     enable_amp, load_config)

__all__ = [
    'AMP_DTYPES',     'build_runner', 'check_checkpoint', 'configure_test', 'enable_amp',
    'load_config', 'inference_segmentor', 'init_segmentor'
]
