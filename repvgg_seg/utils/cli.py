"""How every command-line tool fails: ``error: <one line>`` on stderr and
exit code 2 for what the user can fix (a checkpoint, config, path, data
set), instead of a traceback that buries the message. Anything else is a
bug and keeps its traceback. SIGTERM (``kill``, a scheduler's pre-emption)
unwinds the tool like Ctrl-C, so its temporary files are removed and its
locks released.
"""
import argparse
import functools
import math
import os
import signal
import sys

from .errors import ConfigError, InvalidArgument, UserError
from .text import printable

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
TERMINATED_EXIT = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised where the tool is (a ``BaseException``, as
    ``KeyboardInterrupt``: only cleanups catch it)."""


def _raise_terminated(signum, frame):
    if os.getpid() != _raise_terminated.pid:  # a forked worker: die plainly
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated()


def is_user_error(exc):
    """A :class:`UserError`, or an ``OSError`` (the system refused a path
    the user gave: missing, unwritable, disk full)."""
    return isinstance(exc, (UserError, OSError))


def one_line(exc):
    """The message on one line (the contract of ``error: ...``), with any
    control character it quotes from a file made visible."""
    return printable(' '.join(line.strip() for line in str(exc).splitlines()
                              if line.strip()) or type(exc).__name__)


def cli_main(main):
    """``main`` returning its exit code instead of raising: ``error: ...``
    and 2 for a user error, 130 on Ctrl-C (bugs keep their traceback)."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print('interrupted', file=sys.stderr)
            return INTERRUPTED_EXIT
        except Terminated:
            print('terminated', file=sys.stderr)
            return TERMINATED_EXIT
        except Exception as exc:  # noqa: B902 (bugs are re-raised)
            if not is_user_error(exc):
                raise
            print(f'error: {one_line(exc)}', file=sys.stderr)
            return USER_ERROR_EXIT
    return wrapped


def run_cli(main, *args):
    """Run a tool's ``main(*args)`` through :func:`cli_main` (SIGTERM
    raising :class:`Terminated`) and exit with its code."""
    _raise_terminated.pid = os.getpid()
    signal.signal(signal.SIGTERM, _raise_terminated)
    sys.exit(cli_main(main)(*args))


def bounded(kind, low, high=None, what=None):
    """An argparse ``type``: a finite ``kind`` (int or float) in
    ``[low, high]``, else argparse's usage error naming the range."""
    what = what or ('an integer' if kind is int else 'a number')
    bounds = f'{low}..{high}' if high is not None else f'>= {low}'
    if kind is float and low == math.ulp(0.0):  # positive(float)
        bounds = f'in (0, {high}]' if high is not None else '> 0'

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not {what}') from None
        if not math.isfinite(value) or value < low or (
                high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f'{text} is out of range: expected {what} {bounds}')
        return value

    parse.__name__ = kind.__name__
    return parse


def positive(kind, high=None):
    """An argparse ``type``: ``kind`` > 0 (a count, a size, a rate)."""
    if kind is int:
        return bounded(int, 1, high, 'a positive integer')
    return bounded(float, math.ulp(0.0), high, 'a positive number')


def positive_setting(variable, kind, default):
    """The environment variable ``variable`` as a positive ``kind`` (a
    limit a user may raise), ``default`` when it is unset; a bad value is
    refused in one line naming the variable."""
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        return positive(kind)(text)
    except argparse.ArgumentTypeError as exc:
        raise InvalidArgument(f'{variable}={text!r}: {exc}') from None


def _cfg_options_action():
    """mmengine's ``DictAction``, with the one-line error (not a
    traceback) for an item that is not ``KEY=VALUE``."""
    from mmengine.config import DictAction

    class CfgOptions(DictAction):
        def __call__(self, parser, namespace, values, option_string=None):
            for item in values:
                if '=' not in item or item.startswith('='):
                    raise ConfigError(
                        f'--cfg-options {item!r} is not KEY=VALUE (e.g. '
                        'train_cfg.max_iters=1000)')
            super().__call__(parser, namespace, values, option_string)

    return CfgOptions


def add_cfg_options(parser, example_option):
    """MMSeg's ``--cfg-options KEY=VALUE ...``."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=_cfg_options_action(),
        metavar='KEY=VALUE',
        help=f'override config settings, e.g. {example_option}')


def add_runner_arguments(parser, example_option):
    """MMSeg's ``--cfg-options``, ``--launcher`` and ``--local-rank``, shared
    by ``tools/train.py`` and ``tools/test.py``."""
    add_cfg_options(parser, example_option)
    parser.add_argument(
        '--launcher', default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        help='job launcher: none (one process, default) or pytorch for '
        'torchrun (slurm and mpi need GPUs)')
    parser.add_argument(
        '--local_rank', '--local-rank', type=int, default=0,
        help='set by older launchers (torch.distributed.launch); torchrun '
        'sets LOCAL_RANK instead (default: 0)')


def parse_runner_args(parser):
    """Parse, and export ``LOCAL_RANK`` as older launchers only pass
    ``--local-rank``."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
