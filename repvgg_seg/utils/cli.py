"""How every command-line tool fails: ``error: <one line>`` on stderr and
exit code 2 for what the user can fix (a checkpoint, config, path, data
set), instead of a traceback that buries the message. Anything else is a
bug and keeps its traceback.
"""
import os
import os.path as osp
import sys

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def user_error_types():
    """Exceptions whose message says what is wrong and what to do.

    ``OSError`` covers missing or unwritable paths and disk full;
    ``SyntaxError`` inside a tool's ``main`` can only come from a config
    file (code is compiled at import, before ``main`` runs).
    """
    from ..compat import CheckpointError, CompiledOpUnavailable
    from ..datasets import (CityscapesPrepError, DatasetCheckError,
                            DatasetLayoutError)
    from ..deploy import DeployError
    from ..models.backbones.repvgg_checkpoint import PretrainedMismatchError
    from ..models.backbones.repvgg_convert import ConversionError
    from .config import ConfigError
    return (CheckpointError, CityscapesPrepError, CompiledOpUnavailable,
            ConfigError, ConversionError, DatasetCheckError,
            DatasetLayoutError, DeployError, PretrainedMismatchError,
            OSError, SyntaxError)


def _our_folders():
    """This package and the folder of the running tool."""
    folders = [_PACKAGE_DIR]
    main_file = getattr(sys.modules.get('__main__'), '__file__', None)
    if main_file:
        folders.append(osp.dirname(osp.abspath(main_file)))
    return tuple(folder + osp.sep for folder in folders)


def _raised_in_our_code(exc):
    """Whether ``exc``, or an exception it was raised from (mmengine's
    registry re-raises), comes from :func:`_our_folders`, not from a
    library we call."""
    ours, seen = _our_folders(), set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and osp.abspath(
                tb.tb_frame.f_code.co_filename).startswith(ours):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_user_error(exc):
    """A known user-error type, or a ``ValueError`` our code raised."""
    return isinstance(exc, user_error_types()) or (
        isinstance(exc, ValueError) and _raised_in_our_code(exc))


def one_line(exc):
    """The message on one line (the contract of ``error: ...``)."""
    return ' '.join(line.strip() for line in str(exc).splitlines()
                    if line.strip()) or type(exc).__name__


def run_cli(main, *args):
    """Run ``main(*args)`` and exit: with its return value, with 2 and
    ``error: ...`` for a user error, with 130 on Ctrl-C."""
    try:
        code = main(*args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        code = INTERRUPTED_EXIT
    except Exception as exc:  # noqa: B902 (bugs are re-raised)
        if not is_user_error(exc):
            raise
        print(f'error: {one_line(exc)}', file=sys.stderr)
        code = USER_ERROR_EXIT
    sys.exit(code)


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
