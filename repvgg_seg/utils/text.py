"""Text from files (checkpoint meta, class names, data set file names) is
printed only through :func:`printable`: a name holding terminal escape
sequences would otherwise clear the screen, recolour it or fake output."""
import unicodedata


def _escaped(char):
    code = ord(char)
    if code <= 0xff:
        return f'\\x{code:02x}'
    return f'\\u{code:04x}' if code <= 0xffff else f'\\U{code:08x}'


def printable(text):
    """``text`` (any object, as ``str``) with every control or format
    character (ESC, newlines, bidi overrides...) written as a visible
    ``\\xNN``/``\\uNNNN`` escape; other characters, non-ASCII included,
    are kept."""
    return ''.join(_escaped(char) if unicodedata.category(char)[0] == 'C'
                   else char for char in str(text))
