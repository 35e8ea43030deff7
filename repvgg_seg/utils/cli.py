"""The command-line contract of every tool (``error: ...`` and exit 2 for a
user error, option and path types, ``--cfg-options``): the package's name
for the top-level :mod:`repvgg_seg_cli`, which lives outside the package so
that tools parse their options (and answer ``--help``) without importing
torch; and limits read from the environment.
"""
import argparse
import os

from repvgg_seg_cli import *  # noqa: F401,F403
from repvgg_seg_cli import __all__ as _CLI_NAMES
from repvgg_seg_cli import positive
from .errors import InvalidArgument

__all__ = [*_CLI_NAMES, 'positive_setting']


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
