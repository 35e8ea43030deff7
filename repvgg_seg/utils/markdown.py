"""Generated sections of Markdown files (README tables, benchmark results):
the text between two marker comments is replaced, the rest kept."""
import os.path as osp

from .errors import UserError
from .files import atomic_write


class MarkersMissing(UserError, ValueError):
    """A file that lacks the markers of the section to replace."""


def replace_section(path, start, end, body, missing='append', header=''):
    """Put ``body`` between the ``start`` and ``end`` marker lines of the
    file ``path`` (re-read here: others may have edited it meanwhile).

    Where the markers are absent: ``missing='append'`` adds the section at
    the end (a missing file is created from ``header``), ``'error'`` raises
    :class:`MarkersMissing`.
    """
    text = header
    if osp.exists(path):
        with open(path, encoding='utf-8') as f:
            text = f.read()
    block = f'{start}\n{body.strip(chr(10))}\n{end}'
    if start in text and end in text.split(start, 1)[1]:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    elif missing == 'error':
        raise MarkersMissing(f'{path} has no {start} ... {end} markers: add '
                             'them where the section should go')
    else:
        text = (text.rstrip('\n') + '\n\n' if text.strip() else '') + block
        text += '\n'
    atomic_write(text, path, mode='w', encoding='utf-8')


def has_section(path, start, end):
    """Whether ``path`` exists and holds both markers, in order."""
    if not osp.exists(path):
        return False
    with open(path, encoding='utf-8') as f:
        text = f.read()
    return start in text and end in text.split(start, 1)[1]
