"""Label colours blended into frames, the same on the CPU and the GPU.

The blend is fixed-point: with ``w = round(256 * opacity)``,
``out = (frame * (256 - w) + colour * w + 128) >> 8`` per channel. Integer
arithmetic gives the same bytes from NumPy/OpenCV and from PyTorch on a GPU
(float blending rounds differently in each), and it is cheap: one table
lookup (label -> ``colour * w + 128``, 16-bit) and one multiply-add.
"""
import cv2
import numpy as np

from ...utils.text import printable
from .sources import VideoError

#: Fixed-point scale of the opacity.
BLEND_ONE = 256


def bgr_palette(palette):
    """A 256-entry BGR table of an RGB palette; 255 (ignore) and labels past
    the palette black."""
    colours = np.asarray(palette)
    if colours.ndim != 2 or colours.shape[1] != 3 or not np.isin(
            colours.dtype.kind, ('i', 'u')) or colours.size and (
                colours.min() < 0 or colours.max() > 255):
        raise VideoError(f'the palette (from the checkpoint\'s meta) must '
                         f'be RGB triples of 0..255, got '
                         f'{printable(str(palette))[:80]}')
    table = np.zeros((256, 3), np.uint8)
    table[:len(colours)] = colours.astype(np.uint8)[:256, ::-1]
    return table


def blend_weight(opacity):
    """The fixed-point weight of the label colours, 0..256."""
    return int(round(opacity * BLEND_ONE))


def colour_table(palette_bgr, opacity):
    """``256 x 3`` uint16: label -> ``colour * w + 128`` (the rounding)."""
    return (palette_bgr.astype(np.uint16) * blend_weight(opacity) +
            BLEND_ONE // 2).astype(np.uint16)


def reference_overlay(frame, labels, palette_bgr, opacity):
    """The blend in plain NumPy, for checking the fast forms."""
    w = blend_weight(opacity)
    colours = palette_bgr[labels].astype(np.int64)
    return ((frame.astype(np.int64) * (BLEND_ONE - w) + colours * w +
             BLEND_ONE // 2) >> 8).astype(np.uint8)


class CPUOverlay:
    """``frame (HxWx3 uint8 BGR), labels (HxW uint8) -> blended frame``:
    OpenCV's table lookup and 16-bit multiply-add (several times faster
    than ``palette[labels]`` + ``cv2.addWeighted``)."""

    def __init__(self, palette_bgr, opacity):
        self.keep = BLEND_ONE - blend_weight(opacity)
        self.table = colour_table(palette_bgr, opacity).reshape(1, 256, 3)

    def __call__(self, frame, labels):
        labels = np.ascontiguousarray(labels, np.uint8)
        colours = cv2.LUT(cv2.merge([labels, labels, labels]), self.table)
        out = cv2.multiply(frame, self.keep, dtype=cv2.CV_16U)
        out = cv2.add(out, colours)
        return (out >> 8).astype(np.uint8)


def draw_text_bgr(frame, text):
    """A line of white text on a black box at the top left, in place."""
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                         0.7, 2)
    right, bottom = min(width + 16, frame.shape[1]), min(height + 18,
                                                         frame.shape[0])
    frame[:bottom, :right] = 0
    cv2.putText(frame, text, (8, height + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                (255, 255, 255), 2, cv2.LINE_AA)


def draw_text_yuv420(frame, text):
    """:func:`draw_text_bgr` on a planar ``(3H/2) x W`` yuv420p frame: text
    on the luma plane, the box neutral in the chroma planes."""
    height, width = frame.shape[0] * 2 // 3, frame.shape[1]
    luma = frame[:height]
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                          0.7, 2)
    right, bottom = min(text_w + 16, width) // 2 * 2, min(
        text_h + 18, height) // 2 * 2
    luma[:bottom, :right] = 16
    cv2.putText(luma, text, (8, text_h + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                235, 2, cv2.LINE_AA)
    # U then V, each (H/2) x (W/2), stored as H/4 rows of W bytes
    for plane in np.split(frame[height:].reshape(-1), 2):
        plane.reshape(height // 2, width // 2)[:bottom // 2, :right // 2] = 128
