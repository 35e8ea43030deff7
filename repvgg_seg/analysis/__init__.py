"""Measuring and reporting: speed benchmarks against MMSeg's models
(timing, candidates, complexity, fast-path variants, tables, plots) and
the arch table of the README. Above :mod:`repvgg_seg.deploy`, below
:mod:`repvgg_seg.apis`."""
from .arch_table import update_arch_table
from .runs import run_benchmark

__all__ = ['run_benchmark', 'update_arch_table']
