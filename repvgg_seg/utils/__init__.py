"""Helpers shared by the command-line tools and the APIs."""
from .cli import (add_runner_arguments, is_user_error, parse_runner_args,
                  run_cli)
from .config import ConfigError, read_config

__all__ = [
    'ConfigError', 'add_runner_arguments', 'is_user_error',
    'parse_runner_args', 'read_config', 'run_cli'
]
