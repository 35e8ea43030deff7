"""What ``tools/train.py`` and ``tools/test.py`` print: a short console
that ends with the result, while mmengine's full log (environment, config,
hooks, every logged iteration) still goes to the work_dir's log file.

mmengine's Runner logs all of it to the console too (over a thousand lines
for the quick start, the config twice, CUDA and NCCL lines on a CPU), which
buries the result. :class:`QuietRunner` is the Runner with
:class:`QuietConsole` on its logger's console handler; :class:`RunSummary`,
a hook, logs the summary at the end: metrics, where the checkpoint and the
log are, and the command to run next.
"""
import io
import logging
import math
import numbers
import os.path as osp
import re
import shlex
import time
from contextlib import redirect_stdout

from mmengine.hooks import Hook
from mmengine.runner import (EpochBasedTrainLoop, Runner,
                             find_latest_checkpoint)

from ..compat.warnings import KNOWN_HARMLESS_LOGS

#: mmengine's line for a logged training iteration: ``Iter(train) [20/480]``.
PROGRESS = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\]')
#: Starts of the INFO records the console shows: the per-class table
#: mmseg's IoUMetric logs (a heading, then the table) and where a resumed
#: run continues.
SHOWN = ('per class results:', '\n+', 'resumed epoch:')
#: ``extra`` of the records the console always shows (the summary).
SUMMARY = {'console': True}


class QuietConsole(logging.Filter):
    """Lets through warnings and errors (but the known harmless ones), the
    training progress at every ``1 / steps`` of the run, the :data:`SHOWN`
    records and the :data:`SUMMARY` ones."""

    def __init__(self, steps=10):
        super().__init__()
        self.steps, self.shown_step = steps, -1
        self.harmless = re.compile('|'.join(KNOWN_HARMLESS_LOGS))

    def filter(self, record):
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return not self.harmless.search(message)
        progress = PROGRESS.search(message)
        if progress:
            done, total = map(int, progress.groups())
            step = done * self.steps // max(total, 1)
            if step <= self.shown_step:
                return False
            self.shown_step = step
            return True
        return getattr(record, 'console', False) or \
            message.startswith(SHOWN)


class QuietRunner(Runner):
    """mmengine's Runner, with :class:`QuietConsole` on the console handler
    of its logger (from the start: the Runner logs the environment and the
    config while it is built)."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and not any(
                    isinstance(f, QuietConsole) for f in handler.filters):
                handler.addFilter(QuietConsole())
        return logger

    def load_checkpoint(self, *args, **kwargs):
        """mmengine's, with the line it prints (not logs) about the loading
        sent to the log."""
        with redirect_stdout(io.StringIO()) as printed:
            checkpoint = super().load_checkpoint(*args, **kwargs)
        for line in printed.getvalue().splitlines():
            self.logger.info(line)
        return checkpoint


def shown_path(path):
    """``path`` relative to the working directory when it is below it (as
    a user types it), else absolute; quoted for a shell."""
    relative = osp.relpath(path)
    return shlex.quote(path if relative.startswith('..') else relative)


def format_metrics(metrics):
    """``mIoU: 31.40  aAcc: 93.10 ...`` (as mmengine logs them), mIoU
    first."""
    names = sorted(metrics, key=lambda name: name != 'mIoU')
    return '  '.join(f'{name}: {metrics[name]:.2f}' if isinstance(
        metrics[name], numbers.Real) and not isinstance(metrics[name], int)
        else f'{name}: {metrics[name]}' for name in names)


def _duration(seconds):
    minutes, seconds = divmod(math.ceil(seconds), 60)
    return f'{minutes} min {seconds} s' if minutes else f'{seconds} s'


class RunSummary(Hook):
    """Logs, last, what a run gave: the metrics of the final validation (or
    of the test), the checkpoint, the log, and the command to run next.

    Args:
        checkpoint (str, optional): the tested checkpoint (test runs).
        next_command (str, optional): the command to suggest, with
            ``{checkpoint}`` for the trained (or tested) checkpoint.
    """

    priority = 'LOWEST'

    def __init__(self, checkpoint=None, next_command=None):
        self.checkpoint, self.next_command = checkpoint, next_command
        self.metrics, self.start = None, time.monotonic()

    def before_run(self, runner):
        self.start = time.monotonic()

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics

    def after_train(self, runner):
        steps = f'{runner.epoch} epochs' if isinstance(
            runner.train_loop, EpochBasedTrainLoop) else \
            f'{runner.iter} iterations'
        self._log(runner, f'Trained {steps} in '
                  f'{_duration(time.monotonic() - self.start)}',
                  find_latest_checkpoint(runner.work_dir))

    def after_test_epoch(self, runner, metrics=None):
        self.metrics = metrics
        self._log(runner, f'Tested {shown_path(self.checkpoint)} in '
                  f'{_duration(time.monotonic() - self.start)}', None)

    def _log(self, runner, done, checkpoint):
        lines = [done]
        if self.metrics:
            lines.append(f'{"val" if checkpoint else "test"} '
                         f'{format_metrics(self.metrics)}')
        if checkpoint:
            lines.append(f'checkpoint: {shown_path(checkpoint)}')
        lines.append('full log: ' + shown_path(
            osp.join(runner.log_dir, f'{runner.timestamp}.log')))
        if self.next_command and (checkpoint or self.checkpoint):
            lines.append('next: ' + self.next_command.format(
                checkpoint=shown_path(checkpoint or self.checkpoint)))
        runner.logger.info('\n'.join(lines), extra=SUMMARY)
