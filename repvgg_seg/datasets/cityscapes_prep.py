"""Prepare a Cityscapes root for MMSegmentation.

This does what MMSeg's ``tools/dataset_converters/cityscapes.py`` does:
render ``*_gtFine_labelTrainIds.png`` (19 train classes, 255 = ignore) from
every polygon JSON with cityscapesscripts, and write the ``train.txt`` /
``val.txt`` / ``test.txt`` split lists. It also checks the root first, so a
broken download fails with one line that names the file, not with a traceback
from a worker process. Re-runs skip labels that are already up to date.
"""
import io
import math
import os
import os.path as osp

from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import name2label
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from mmengine.utils import scandir, track_parallel_progress, track_progress
from PIL import Image
from ..utils.errors import UserError
from ..utils.files import atomic_write
from ..utils.images import ImageTooLarge, check_image_size
from .check import dangling_links

SPLITS = ('train', 'val', 'test')
IMG_SUFFIX = '_leftImg8bit.png'
POLYGON_SUFFIX = '_gtFine_polygons.json'
TRAIN_IDS_SUFFIX = '_gtFine_labelTrainIds.png'
CONVERTED, SKIPPED = 'converted', 'skipped'


class CityscapesPrepError(UserError, ValueError):
    """A Cityscapes root that cannot be prepared.

    The one-line message names the file and says what to do.
    """


def _stems(folder, suffix):
    """Sorted 'city/city_seq_frame' stems of the files ending in suffix; a
    line break in a name is refused (the split lists hold one a line)."""
    if not osp.isdir(folder):
        return []
    stems = sorted(name[:-len(suffix)]
                   for name in scandir(folder, suffix, recursive=True))
    dangling = dangling_links(folder, suffix)
    if dangling:
        raise CityscapesPrepError(f'{dangling[0]} ({len(dangling)} in '
                                  'all): restore the files or remove them')
    for stem in stems:
        if '\n' in stem or '\r' in stem:
            raise CityscapesPrepError(
                f'{osp.join(folder, stem + suffix)!r} has a line break in '
                'its name, which the split lists (one name a line) cannot '
                'hold: rename it')
    return stems


def _require_counterparts(stems, counterparts, own, other, fix):
    """Raise for the first stem without a counterpart.

    own and other are the (folder, suffix) of the stems' and the counterparts'
    files.
    """
    lacking = sorted(set(stems) - set(counterparts))
    if lacking:
        own_path, other_path = (osp.join(folder, lacking[0] + suffix)
                                for folder, suffix in (own, other))
        raise CityscapesPrepError(
            f'{own_path} has no matching {other_path} ({len(lacking)} in '
            f'total): {fix}')


def find_samples(root):
    """Check root's layout and pair images with annotations.

    Returns {split: [stem, ...]} for each split present.
    """
    if not osp.isdir(root):
        raise CityscapesPrepError(
            f'Cityscapes root {root} '
            f'{"is a file" if osp.exists(root) else "does not exist"}: pass '
            'the folder that '
            'holds leftImg8bit/ and gtFine/ (python tools/make_citymini.py '
            'makes a small synthetic one)')
    for folder, archive in (('leftImg8bit', 'leftImg8bit_trainvaltest.zip'),
                            ('gtFine', 'gtFine_trainvaltest.zip')):
        if not osp.isdir(osp.join(root, folder)):
            raise CityscapesPrepError(
                f'{root} has no {folder}/ folder: unzip {archive} from '
                f'cityscapes-dataset.com into {root}')
    samples = {}
    for split in SPLITS:
        image_dir = osp.join(root, 'leftImg8bit', split)
        gt_dir = osp.join(root, 'gtFine', split)
        images = _stems(image_dir, IMG_SUFFIX)
        annotations = _stems(gt_dir, POLYGON_SUFFIX)
        image_files = (image_dir, IMG_SUFFIX)
        json_files = (gt_dir, POLYGON_SUFFIX)
        _require_counterparts(
            images, annotations, image_files, json_files,
            'restore the annotations or remove those images')
        _require_counterparts(
            annotations, images, json_files, image_files,
            'restore the images or remove those annotations')
        if images:
            samples[split] = images
    if not samples:
        raise CityscapesPrepError(
            f'no *{IMG_SUFFIX} images under {osp.join(root, "leftImg8bit")}/'
            f'{{{",".join(SPLITS)}}}: is {root} the right folder?')
    return samples


def _load_annotation(json_path):
    """Parse a polygon JSON; reject what would make cityscapesscripts exit."""
    annotation = Annotation()
    try:
        annotation.fromJsonFile(json_path)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise CityscapesPrepError(
            f'invalid polygon JSON {json_path} ({type(err).__name__}: {err}): '
            're-download or regenerate it') from None
    for obj in annotation.objects:
        if not all(math.isfinite(v) for point in obj.polygon
                   for v in (point.x, point.y)):
            raise CityscapesPrepError(
                f'{json_path}: a polygon of {obj.label!r} has a NaN or '
                'infinite coordinate: re-download or regenerate it')
        label = obj.label
        if label not in name2label and label.endswith('group'):
            label = label[:-len('group')]  # cityscapesscripts' own fallback
        if label not in name2label:
            raise CityscapesPrepError(
                f'{json_path} uses unknown label {obj.label!r}: use label '
                'names from cityscapesscripts.helpers.labels')
    return annotation


def _check_image(image_path, annotation, json_path):
    try:
        with Image.open(image_path) as image:
            size = image.size
            check_image_size(*size, 'the image')
            image.verify()  # checks the PNG chunk checksums without decoding
    except (Image.DecompressionBombError, ImageTooLarge) as err:
        raise CityscapesPrepError(f'{image_path}: {err}; not a camera frame, '
                                  'refusing to decode it') from None
    except (OSError, SyntaxError, ValueError) as err:
        raise CityscapesPrepError(
            f'corrupt image {image_path} ({err}): re-download or regenerate '
            'it') from None
    if size != (annotation.imgWidth, annotation.imgHeight):
        raise CityscapesPrepError(
            f'{image_path} is {size[1]}x{size[0]} (HxW) but {json_path} '
            f'says {annotation.imgHeight}x{annotation.imgWidth}: the two do '
            'not belong together')


def _prepare_sample(paths):
    """Render one trainIds PNG. Returns CONVERTED, SKIPPED or the error.

    Errors are returned, not raised, so one bad file does not kill the pool.
    """
    image_path, json_path, out_path = paths
    if osp.isfile(out_path) and \
            osp.getmtime(out_path) >= osp.getmtime(json_path):
        return SKIPPED
    try:
        annotation = _load_annotation(json_path)
        _check_image(image_path, annotation, json_path)
        # What json2labelImg(json, out, 'trainIds') does, checked and atomic.
        try:
            label_image = createLabelImage(annotation, 'trainIds')
        except (TypeError, ValueError) as err:
            raise CityscapesPrepError(
                f'invalid polygon in {json_path} ({err}): re-download or '
                'regenerate it') from None
        png = io.BytesIO()
        label_image.save(png, format='PNG')
        atomic_write(png.getvalue(), out_path)
    except CityscapesPrepError as err:
        return err
    except OSError as err:  # disk full, read-only folder
        return CityscapesPrepError(f'cannot write {out_path}: '
                                   f'{err.strerror or err}')
    return CONVERTED


def prepare_cityscapes(root, nproc=None):
    """Write trainIds label PNGs and split lists for the Cityscapes root.

    nproc defaults to the CPU count (at most 8). Returns a dict with the
    number of labels converted and skipped (already up to date) and the
    number of samples per split. Raises CityscapesPrepError on a bad root.
    """
    samples = find_samples(root)
    jobs = []
    for split, stems in samples.items():
        for stem in stems:
            image = osp.join(root, 'leftImg8bit', split, stem + IMG_SUFFIX)
            gt_stem = osp.join(root, 'gtFine', split, stem)
            jobs.append((image, gt_stem + POLYGON_SUFFIX,
                         gt_stem + TRAIN_IDS_SUFFIX))
    nproc = min(nproc or min(os.cpu_count() or 1, 8), len(jobs))
    if nproc > 1:
        results = track_parallel_progress(_prepare_sample, jobs, nproc)
    else:
        results = track_progress(_prepare_sample, jobs)
    errors = [r for r in results if isinstance(r, CityscapesPrepError)]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CityscapesPrepError(
            f'{errors[0]} ({len(errors) - 1} more files failed too)')
    for split, stems in samples.items():
        atomic_write(''.join(stem + '\n' for stem in stems).encode(),
                     osp.join(root, f'{split}.txt'))
    splits = {split: len(stems) for split, stems in samples.items()}
    return dict(converted=results.count(CONVERTED),
                skipped=results.count(SKIPPED), splits=splits)
