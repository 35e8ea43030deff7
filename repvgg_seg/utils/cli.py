"""The command-line contract of every tool (``error: ...`` and exit 2 for a
user error, option types, ``--cfg-options``): the package's name for the
top-level :mod:`repvgg_seg_cli`, which lives outside the package so that
tools parse their options (and answer ``--help``) without importing torch.
"""
from repvgg_seg_cli import (INTERRUPTED_EXIT, TERMINATED_EXIT,
                            USER_ERROR_EXIT, CfgOptions, Terminated,
                            add_cfg_options, add_runner_arguments,
                            bounded, cli_main, is_user_error, one_line,
                            package_choice, parse_runner_args, positive,
                            run_cli)

__all__ = [
    'INTERRUPTED_EXIT', 'TERMINATED_EXIT', 'USER_ERROR_EXIT', 'CfgOptions',
    'Terminated', 'add_cfg_options', 'add_runner_arguments',
    'bounded', 'cli_main', 'is_user_error', 'one_line', 'package_choice',
    'parse_runner_args', 'positive', 'run_cli'
]
