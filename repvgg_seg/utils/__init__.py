"""Helpers every layer may use: errors, atomic files, configs, generated
Markdown sections, the command-line contract."""
from .cli import (add_runner_arguments, is_user_error, parse_runner_args,
                  run_cli)
from .config import read_config
from .errors import (ConfigError, InvalidArgument, PathNotFound,
                     UserError)
from .files import atomic_output, atomic_torch_save, atomic_write, same_file
from .markdown import MarkersMissing, replace_section
from .text import printable

__all__ = [
    'add_runner_arguments', 'is_user_error', 'parse_runner_args', 'run_cli',
    'ConfigError', 'InvalidArgument', 'MarkersMissing', 'PathNotFound',
    'UserError', 'atomic_output', 'atomic_torch_save', 'atomic_write',
    'printable', 'read_config', 'replace_section', 'same_file'
]
