"""Measuring and reporting: speed benchmarks against MMSeg's models
(timing, candidates, complexity, fast-path variants, tables, plots), the
training and video benchmarks, and the arch table of the README. Above :mod:`repvgg_seg.deploy`, below
:mod:`repvgg_seg.apis`."""
from .arch_table import update_arch_table
from .runs import run_benchmark
from .training import DEFAULT_VARIANTS as DEFAULT_TRAINING_VARIANTS
from .training import VARIANTS as TRAINING_VARIANTS
from .training import load_result as load_training_result
from .training import report as report_training_benchmark
from .training import run as run_training_benchmark
from .video import run_video_benchmark

__all__ = [
    'DEFAULT_TRAINING_VARIANTS', 'TRAINING_VARIANTS', 'load_training_result',
    'report_training_benchmark', 'run_benchmark', 'run_training_benchmark',
    'run_video_benchmark', 'update_arch_table'
]
