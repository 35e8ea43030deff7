"""The command-line contract of every tool (``error: ...`` and exit 2 for a
user error, option and path types, ``--cfg-options``): the package's name
for the top-level :mod:`repvgg_seg_cli`, which lives outside the package so
that tools parse their options (and answer ``--help``) without importing
torch.
"""
from repvgg_seg_cli import *  # noqa: F401,F403
from repvgg_seg_cli import __all__  # noqa: F401
