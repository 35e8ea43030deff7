"""How every command-line tool parses its options and fails, importable
without torch.

A top-level module (as :mod:`repvgg_seg_hook`), not part of the
``repvgg_seg`` package: importing anything in the package runs its
``__init__``, which imports torch, mmengine and mmseg to register the
models (seconds), while a tool should answer ``--help`` and refuse a bad
option at once. So a tool builds its parser from this module (standard
library only) and imports the package in ``main()`` after parsing;
:mod:`repvgg_seg.utils.cli` is the package's name for the same functions.

Failing: ``error: <one line>`` on stderr and exit code 2 for what the user
can fix (a checkpoint, config, path, data set), instead of a traceback that
buries the message. Anything else is a bug and keeps its traceback. SIGTERM
(``kill``, a scheduler's pre-emption) unwinds the tool like Ctrl-C, so its
temporary files are removed and its locks released.
"""
import argparse
import functools
import importlib
import math
import os
import signal
import sys

__all__ = [
    'INTERRUPTED_EXIT', 'TERMINATED_EXIT', 'USER_ERROR_EXIT', 'CfgOptions',
    'Terminated', 'add_cfg_options', 'add_runner_arguments', 'bounded',
    'checkpoint_file', 'cli_main', 'config_file', 'has_display',
    'input_file', 'is_user_error', 'one_line', 'output_file',
    'output_folder', 'package_choice', 'parse_runner_args', 'positive',
    'run_cli', 'VIDEO_FPS_RANGE'
]

USER_ERROR_EXIT = 2
#: Frame rates a video may have (fps): a header outside is junk, and
#: real-time pacing of 0.001 fps would sleep 1000 s a frame.
VIDEO_FPS_RANGE = (0.1, 1000.0)
INTERRUPTED_EXIT = 130
TERMINATED_EXIT = 128 + signal.SIGTERM
#: Where :class:`UserError` lives (imported by whatever raises one).
ERRORS_MODULE = 'repvgg_seg.utils.errors'


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
    """A ``UserError``, or an ``OSError`` (the system refused a path the
    user gave: missing, unwritable, disk full). ``UserError`` is looked up
    in ``sys.modules``: an instance of it exists only once its module is
    imported, and importing it here would import torch."""
    errors = sys.modules.get(ERRORS_MODULE)
    return isinstance(exc, OSError) or (
        errors is not None and isinstance(exc, errors.UserError))


def one_line(exc):
    """The message on one line (the contract of ``error: ...``), with any
    control character it quotes from a file made visible."""
    from repvgg_seg.utils.text import printable  # imported with UserError
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


def has_display():
    """Whether ``--show`` can open a window (on Linux, Qt aborts the
    process, exit 134, without DISPLAY or WAYLAND_DISPLAY)."""
    return not sys.platform.startswith('linux') or bool(
        os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def bounded(kind, low, high=None, what=None):
    """An argparse ``type``: a finite ``kind`` (int or float) in
    ``[low, high]``, else argparse's usage error naming the range. ``high``
    may be a function, called when a value is given (a limit that takes
    importing torch to know)."""
    what = what or ('an integer' if kind is int else 'a number')

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not {what}') from None
        limit = high() if callable(high) else high
        bounds = f'{low}..{limit}' if limit is not None else f'>= {low}'
        if kind is float and low == math.ulp(0.0):  # positive(float)
            bounds = f'in (0, {limit}]' if limit is not None else '> 0'
        if not math.isfinite(value) or value < low or (
                limit is not None and value > limit):
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


def _newest(folder, suffixes):
    """The newest file of ``folder`` ending in one of ``suffixes``."""
    try:
        names = [name for name in os.listdir(folder) if name.endswith(suffixes)
                 and os.path.isfile(os.path.join(folder, name))]
    except OSError:
        return None
    return max(names, default=None, key=lambda name: os.path.getmtime(
        os.path.join(folder, name)))


def input_file(what, suffixes=(), remote=()):
    """An argparse ``type``: a file the tool reads (``what``: config,
    checkpoint...), refused at once when it does not exist, is a folder (the
    newest ``suffixes`` file in it is suggested) or cannot be read (what is
    in it is the package's to judge). A value holding one of ``remote`` (``'::'`` of ``mmseg::``
    configs, ``'://'`` of URLs) is no local path and passes as it is."""
    def parse(path):
        if any(marker in path for marker in remote):
            return path
        if not os.path.exists(path):
            raise argparse.ArgumentTypeError(
                f'{path} does not exist: check the path of the {what}')
        if os.path.isdir(path):
            newest = _newest(path, suffixes) if suffixes else None
            example = f' (e.g. {os.path.join(path, newest)})' if newest \
                else ''
            raise argparse.ArgumentTypeError(
                f'{path} is a folder: give the {what} file{example}')
        if not os.access(path, os.R_OK):
            raise argparse.ArgumentTypeError(
                f'{path} cannot be read (no read permission): chmod u+r it '
                f'or give another {what}')
        return path

    parse.__name__ = what
    return parse


def output_file(what, example):
    """An argparse ``type``: a file the tool writes, refused at once when a
    folder of that name exists (``example``: a file name to suggest)."""
    def parse(path):
        if os.path.isdir(path):
            raise argparse.ArgumentTypeError(
                f'{path} is a folder: give a file name for the {what} (e.g. '
                f'{os.path.join(path, example)})')
        return path

    parse.__name__ = what
    return parse


def output_folder(what):
    """An argparse ``type``: a folder the tool writes into (created if
    missing), refused at once when a file of that name exists."""
    def parse(path):
        if os.path.exists(path) and not os.path.isdir(path):
            raise argparse.ArgumentTypeError(
                f'{path} is a file: give a folder for the {what} (it is '
                'created if missing)')
        return path

    parse.__name__ = what
    return parse


#: argparse ``type`` of a config argument (``mmseg::`` paths pass).
config_file = input_file('config', ('.py', '.yaml', '.yml', '.json'),
                         remote=('::', ))
#: argparse ``type`` of a checkpoint argument (URLs pass).
checkpoint_file = input_file('checkpoint', ('.pth', ), remote=('://', ))


def package_choice(module, name):
    """An argparse ``type``: a value of ``module.name``, a collection in the
    package (arch names, layouts, dtypes...), imported when a value is
    checked; not ``choices``, which ``--help`` would import to list. Name
    the values in the option's help."""
    def parse(text):
        choices = list(getattr(importlib.import_module(module), name))
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f'invalid choice: {text!r} (choose from '
                f'{", ".join(map(str, choices))})')
        return text

    parse.__name__ = name
    return parse


class CfgOptions(argparse.Action):
    """MMSeg's ``--cfg-options KEY=VALUE ...``: mmengine's ``DictAction``
    parsing of each value (imported when the option is given), with
    argparse's usage error for an item that is not ``KEY=VALUE``."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values:
            key, equals, value = item.partition('=')
            if not (key and equals):
                raise argparse.ArgumentError(
                    self, f'{item!r} is not KEY=VALUE (e.g. '
                    'train_cfg.max_iters=1000)')
            options[key] = DictAction._parse_iterable(value)
        setattr(namespace, self.dest, options)


def add_cfg_options(parser, example_option):
    """MMSeg's ``--cfg-options KEY=VALUE ...``."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptions, metavar='KEY=VALUE',
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


def parse_runner_args(parser, argv=None):
    """Parse, and export ``LOCAL_RANK`` as older launchers only pass
    ``--local-rank``."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
