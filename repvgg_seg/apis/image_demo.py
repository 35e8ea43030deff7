"""Segment images into overlay PNGs (``demo/image_demo.py``), through the
shared inference path (:class:`~..deploy.SegPredictor`)."""
import os
import os.path as osp
from collections import Counter

import cv2
import numpy as np

from ..deploy import SegPredictor, as_bgr_image
from ..utils.errors import InvalidArgument, PathNotFound
from ..utils.files import atomic_write, same_file
from ..utils.images import check_image_file
from .inference import init_segmentor

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
#: Legend rows: swatch size and text scale, in pixels at a 512-px-high image.
LEGEND_ROW = 22


def list_images(source):
    """``source`` itself, or the images of folder ``source`` (sorted)."""
    if osp.isfile(source):
        return [source]
    if not osp.isdir(source):
        raise PathNotFound(f'{source} does not exist: give an image or a '
                           'folder of images')
    images = sorted(osp.join(source, name) for name in os.listdir(source)
                    if name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise PathNotFound(f'folder {source} holds no images '
                           f'({", ".join(IMAGE_EXTENSIONS)})')
    return images


def output_names(images):
    """The overlay name of each image: ``<stem>.png``, or ``<name>.png``
    (``a.jpg.png``, ``a.png.png``) for images that share their stem, so
    that no overlay replaces another."""
    names = [osp.basename(path) for path in images]
    stems = Counter(osp.splitext(name)[0] for name in names)
    outputs = [f'{osp.splitext(name)[0]}.png' if stems[osp.splitext(name)[0]]
               == 1 else f'{name}.png' for name in names]
    clash = next((name for name, count in Counter(outputs).items()
                  if count > 1), None)
    if clash:
        raise InvalidArgument(f'two images would both be written as {clash}: '
                              'rename one of them')
    return outputs


def overlay(image, labels, palette, opacity):
    """Blend the label colours (RGB palette) into the BGR image; ignored
    pixels (255) keep the image."""
    table = np.zeros((256, 3), np.uint8)
    table[:len(palette)] = np.asarray(palette, np.uint8)[:, ::-1]
    colours = table[np.minimum(labels, 255)]
    blended = cv2.addWeighted(image, 1 - opacity, colours, opacity, 0)
    keep = labels >= len(palette)
    blended[keep] = image[keep]
    return blended


def add_legend(image, labels, classes, palette):
    """The image with a panel on its right: colour and name of each class
    present, largest first."""
    ids, counts = np.unique(labels[labels < len(classes)], return_counts=True)
    order = ids[np.argsort(-counts)]
    row = max(12, LEGEND_ROW * image.shape[0] // 512)
    scale = row / 30
    width = row + 8 + max([cv2.getTextSize(classes[i], cv2.FONT_HERSHEY_SIMPLEX,
                                           scale, 1)[0][0] for i in order],
                          default=0) + 8
    panel = np.full((max(image.shape[0], row * len(order) + 8), width, 3),
                    255, np.uint8)
    for n, class_id in enumerate(order):
        top = 4 + n * row
        colour = tuple(int(c) for c in palette[class_id][::-1])
        cv2.rectangle(panel, (4, top + 2), (row, top + row - 2), colour, -1)
        cv2.putText(panel, classes[class_id], (row + 8, top + row - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    canvas = np.full((panel.shape[0], image.shape[1], 3), 255, np.uint8)
    canvas[:image.shape[0]] = image
    return np.concatenate([canvas, panel], axis=1)


def segment_images(source, config, checkpoint, out_dir, device='cpu',
                   opacity=0.5, legend=False, batch_size=1):
    """Write ``out_dir/<stem>.png`` (overlay, optionally with a class-colour
    legend; see :func:`output_names`) for an image or each image of a
    folder; return the paths."""
    if not 0 <= opacity <= 1:
        raise InvalidArgument(f'--opacity must be in [0, 1], got {opacity}')
    images = list_images(source)
    outputs = [osp.join(out_dir, name) for name in output_names(images)]
    for image, output in zip(images, outputs):
        if same_file(image, output):
            raise InvalidArgument(f'the output {output} would overwrite the '
                                  'input image: choose another --out-dir')
        check_image_file(image)  # all before the first is segmented
    model = init_segmentor(config, checkpoint, device, fuse=True)
    classes, palette = (model.dataset_meta[k] for k in ('classes', 'palette'))
    predictor = SegPredictor(model, batch_size)
    os.makedirs(out_dir, exist_ok=True)
    for path, output in zip(images, outputs):
        image = as_bgr_image(path)
        labels = predictor.predict([image])[0]
        painted = overlay(image, labels, palette, opacity)
        if legend:
            painted = add_legend(painted, labels, classes, palette)
        atomic_write(cv2.imencode('.png', painted)[1].tobytes(), output)
    return outputs
