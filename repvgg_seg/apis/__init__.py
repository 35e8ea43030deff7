from .inference import inference_segmentor, init_segmentor
from .runner import build_runner, configure_test, enable_amp, load_config

__all__ = [
    'build_runner', 'configure_test', 'enable_amp', 'load_config',
    'inference_segmentor', 'init_segmentor'
]
