"""Image sizes read from file headers and checked before anything decodes:
a PNG of a few KB can declare 12000x12000 pixels, and decoding and
segmenting it at its size takes over 10 GB."""
import warnings

from .cli import positive_setting
from .errors import InvalidArgument, UserError

#: The most pixels an image may have (8192x8192), unless
#: ``$REPVGG_SEG_MAX_IMAGE_PIXELS`` says otherwise.
MAX_IMAGE_PIXELS = 8192 * 8192
MAX_PIXELS_VARIABLE = 'REPVGG_SEG_MAX_IMAGE_PIXELS'


class ImageTooLarge(UserError, ValueError):
    """An image with more pixels than :func:`max_image_pixels`."""


def max_image_pixels():
    """:data:`MAX_IMAGE_PIXELS`, or ``$REPVGG_SEG_MAX_IMAGE_PIXELS``."""
    return positive_setting(MAX_PIXELS_VARIABLE, int, MAX_IMAGE_PIXELS)


def check_image_size(width, height, what):
    """Refuse an image of ``width`` x ``height`` above the pixel limit."""
    limit = max_image_pixels()
    if width * height > limit:
        raise ImageTooLarge(
            f'{what} is {width}x{height} (WxH), {width * height} pixels, '
            f'more than the limit of {limit}: refusing to decode it (a '
            'small file can declare a huge image); to allow it set '
            f'{MAX_PIXELS_VARIABLE}=PIXELS')


def image_file_size(path):
    """``(width, height)`` of the image file ``path``, from its header
    (nothing is decoded); :class:`InvalidArgument` when there is none."""
    from PIL import Image
    with warnings.catch_warnings():  # large is what we check ourselves
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                return image.size
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f'{path}: {exc}; refusing to decode it'
                                ) from None
        except FileNotFoundError:
            raise
        except (OSError, SyntaxError, ValueError):
            raise InvalidArgument(f'cannot decode image {path}') from None


def check_image_file(path):
    """Refuse the image file ``path`` if its header declares more pixels
    than the limit; returns its ``(width, height)``."""
    width, height = image_file_size(path)
    check_image_size(width, height, f'image {path}')
    return width, height
