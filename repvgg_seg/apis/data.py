"""Check a config's data sets before a long run (``tools/check_dataset.py``)."""
import time

from ..datasets import build_datasets, check_dataset
from ..datasets.check import dataset_cfgs
from ..utils.errors import ConfigError
from .runner import load_runner_config


def check_data(config, splits=('train', 'val'), nproc=8, cfg_options=None):
    """``(problems, {split: samples}, seconds)`` of the config's data."""
    cfg = load_runner_config(config, cfg_options)
    if not dataset_cfgs(cfg, splits):
        loaders = ' / '.join(f'{split}_dataloader' for split in splits)
        raise ConfigError(f'{cfg.filename} has no {loaders}: nothing to '
                          'check (give the training config, or other '
                          '--splits)')
    start = time.perf_counter()
    problems, counts = [], {}
    for split, dataset in build_datasets(cfg, splits).items():
        problems += check_dataset(dataset, nproc)
        counts[split] = len(dataset)
    return problems, counts, time.perf_counter() - start
