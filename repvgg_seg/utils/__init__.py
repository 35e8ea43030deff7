"""Helpers shared by the command-line tools and the APIs."""
from .cli import is_user_error, run_cli
from .config import ConfigError, read_config

__all__ = ['ConfigError', 'is_user_error', 'read_config', 'run_cli']
