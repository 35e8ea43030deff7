"""A tiny, easily learnable ImageNet-style folder for tests and demos."""
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

from repvgg_seg.utils.errors import InvalidArgument

#: Class colours (RGB), far apart so that colour alone separates classes.
PALETTE = ((220, 40, 40), (40, 180, 60), (50, 80, 220), (230, 200, 40),
           (200, 60, 200), (40, 200, 210), (250, 140, 30), (130, 130, 130))
SHAPES = ('ellipse', 'rectangle', 'triangle', 'cross')


def _draw_sample(rng, label, size):
    """One image: a class-tinted noisy background and a class shape."""
    colour = np.array(PALETTE[label % len(PALETTE)], dtype=np.float32)
    background = 0.35 * colour + rng.uniform(0, 80, size=3)
    img = np.clip(background + rng.normal(0, 18, (size, size, 3)), 0, 255)
    canvas = Image.fromarray(img.astype(np.uint8))
    extent = rng.uniform(0.35, 0.7) * size
    x0, y0 = rng.uniform(0, size - extent, size=2)
    box = (x0, y0, x0 + extent, y0 + extent)
    fill = tuple(
        int(c) for c in np.clip(colour + rng.normal(0, 15, 3), 0, 255))
    draw = ImageDraw.Draw(canvas)
    shape = SHAPES[label % len(SHAPES)]
    if shape == 'triangle':
        draw.polygon([(x0, y0 + extent), (x0 + extent / 2, y0),
                      (x0 + extent, y0 + extent)], fill=fill)
    elif shape == 'cross':
        bar = extent / 3
        draw.rectangle((x0 + bar, y0, x0 + 2 * bar, y0 + extent), fill=fill)
        draw.rectangle((x0, y0 + bar, x0 + extent, y0 + 2 * bar), fill=fill)
    else:
        getattr(draw, shape)(box, fill=fill)
    return canvas


def make_tiny_imagenet(root, num_classes=4, train_per_class=20,
                       val_per_class=10, size=64, seed=0):
    """Write ``root/{train,val}/<wnid>/*.JPEG`` and return the wnids.

    Classes differ in colour and shape (plus noise, random placement), so a
    small network learns them in a few epochs on CPU.
    """
    if not 1 <= num_classes <= len(PALETTE):
        raise InvalidArgument(f'num_classes must be 1..{len(PALETTE)}, got '
                         f'{num_classes}')
    rng = np.random.default_rng(seed)
    wnids = [f'n{label:08d}' for label in range(num_classes)]
    for split, count in (('train', train_per_class), ('val', val_per_class)):
        for label, wnid in enumerate(wnids):
            folder = osp.join(root, split, wnid)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                _draw_sample(rng, label, size).save(
                    osp.join(folder, f'{wnid}_{i:04d}.JPEG'), quality=90)
    return wnids
