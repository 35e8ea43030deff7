"""Run a tool or a function in a forked child of the test process.

The child is a real separate process, with its own exit code, stdout and
stderr, whose crash or hang (ended by the timeout) cannot take the tests
down; it skips the ~8 s start-up of a fresh interpreter importing torch and
mmseg, which the test process has already imported (so the child runs
the modules as they were when the tests started). The child reports as
the interpreter would: an uncaught exception prints its traceback to
stderr and exits 1, ``sys.exit('text')`` prints the text and exits 1.
"""
import collections
import os
import runpy
import signal
import sys
import tempfile
import time
import traceback

import torch

Result = collections.namedtuple('Result', 'returncode stdout stderr')


class Hung(AssertionError):
    """The child did not finish in time (it was killed)."""


def _exit_code(exc):
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child(target, out_path, err_path):
    code = 1
    try:
        sys.stdout = open(out_path, 'w', buffering=1)
        sys.stderr = open(err_path, 'w', buffering=1)
        os.dup2(sys.stdout.fileno(), 1)
        os.dup2(sys.stderr.fileno(), 2)
        # libgomp's thread pool does not survive fork; one thread needs none
        torch.set_num_threads(1)
        try:
            target()
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:  # noqa: B902 (reported as the interpreter does)
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)


def run_forked(target, timeout=120):
    """Call ``target()`` in a forked child; its :class:`Result`. A
    negative return code is the signal that killed it (a crash)."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = (os.path.join(tmp, name)
                              for name in ('stdout', 'stderr'))
        pid = os.fork()
        if pid == 0:
            _child(target, out_path, err_path)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise Hung(f'{target} did not finish in {timeout} s')
            time.sleep(0.02)
        with open(out_path) as out, open(err_path) as err:
            return Result(os.waitstatus_to_exitcode(status), out.read(),
                          err.read())


def run_tool(script, *args, timeout=120, setup=None):
    """``python SCRIPT ARGS...`` as a forked child; ``setup()`` runs in the
    child first (to patch something)."""
    def target():
        if setup is not None:
            setup()
        sys.argv = [str(script), *map(str, args)]
        runpy.run_path(str(script), run_name='__main__')

    return run_forked(target, timeout)
