"""How every command-line tool fails: ``error: <one line>`` on stderr and
exit code 2 for what the user can fix (a checkpoint, config, path, data
set), instead of a traceback that buries the message. Anything else is a
bug and keeps its traceback. SIGTERM (``kill``, a scheduler's pre-emption)
unwinds the tool like Ctrl-C, so its temporary files are removed and its
locks released.
"""
import functools
import os
import signal
import sys

from .errors import UserError
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


def add_runner_arguments(parser, example_option):
    """MMSeg's ``--cfg-options``, ``--launcher`` and ``--local-rank``, shared
    by ``tools/train.py`` and ``tools/test.py``."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help=f'override config settings, e.g. {example_option}')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser):
    """Parse, and export ``LOCAL_RANK`` as older launchers only pass
    ``--local-rank``."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
