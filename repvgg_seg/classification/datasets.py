"""ImageNet-style classification folders.

Layout (``data_root``)::

    train/<wnid>/*.JPEG          one folder per class
    val/<wnid>/*.JPEG            the same folders, or
    val/*.JPEG + val.txt         a flat folder and ``name label`` lines

Labels index the sorted class folder names, the order of every ImageNet
checkpoint (official, mmpretrain, torchvision).
"""
import os
import os.path as osp
from pathlib import Path

from mmengine.dataset import BaseDataset

from mmseg.registry import DATASETS
from ..utils.errors import PathNotFound, UserError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')


class DatasetLayoutError(UserError, ValueError):
    """The folders or the annotation file do not form a valid dataset."""


def _is_image(name):
    return not name.startswith('.') and name.lower().endswith(IMG_EXTENSIONS)


#: The 1000 ImageNet-1k class names in label order (sorted wnids), as in
#: torchvision's model metadata and the official RepVGG evaluation.
IMAGENET_CLASSES = tuple(
    Path(__file__).with_name('imagenet_classes.txt').read_text().splitlines())


@DATASETS.register_module()
class ImageNetDataset(BaseDataset):
    """Images under ``data_root/data_prefix['img_path']`` with class labels.

    Args:
        ann_file (str): optional list file (relative to ``data_root``) with
            ``<image path relative to img_path> <label>`` lines, for a flat
            folder; without it every sub-folder is a class.
        metainfo (dict): ``classes`` gives display names in label order, a
            list or a text file with one name per line. By default the 1000
            ImageNet names (:data:`IMAGENET_CLASSES`, in the usual sorted-wnid
            order) when there are 1000 classes, else the class folder names
            (the wnids). Needed with ``ann_file`` for other than 1000
            classes, since its labels are bare numbers.
        **kwargs: the rest of :class:`mmengine.dataset.BaseDataset`, e.g.
            ``data_root``, ``data_prefix=dict(img_path='val')``, ``pipeline``.
    """

    def __init__(self, data_prefix=dict(img_path='train'), **kwargs):
        super().__init__(data_prefix=data_prefix, **kwargs)

    def load_data_list(self):
        img_dir = self.data_prefix['img_path']
        if not osp.isdir(img_dir):
            raise PathNotFound(
                f'ImageNetDataset: image folder {img_dir} does not exist '
                f'(data_root={self.data_root!r}); set data_root to the folder '
                'holding train/ and val/')
        given = self._metainfo.get('classes')
        if isinstance(given, str):  # BaseDataset reads existing files only
            raise PathNotFound(
                f'ImageNetDataset: classes file {given} does not exist')
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise PathNotFound(f'ImageNetDataset: annotation file '
                                        f'{self.ann_file} does not exist')
            if given is None and self._labels_reach_1000():
                given = IMAGENET_CLASSES
            if given is None:
                raise DatasetLayoutError(
                    f'ImageNetDataset: {self.ann_file} labels are numbers, so '
                    'the class names must be given: metainfo=dict(classes='
                    "[...] or 'classes.txt'), one name per line in label "
                    'order (e.g. `ls train > classes.txt`)')
            data_list = self._read_ann_file(img_dir, len(given))
            classes = given
        else:
            classes, data_list = self._scan_class_folders(img_dir)
            if given is None and len(classes) == len(IMAGENET_CLASSES):
                given = IMAGENET_CLASSES
            if given is not None:
                if len(given) != len(classes):
                    raise DatasetLayoutError(
                        f'ImageNetDataset: {len(given)} class names given '
                        f'for the {len(classes)} class folders of {img_dir}')
                classes = given
        self._metainfo['classes'] = tuple(classes)
        return data_list

    def _labels_reach_1000(self):
        """Whether the annotation list uses label 999 (so it is ImageNet-1k
        and the built-in names apply)."""
        with open(self.ann_file) as f:  # already joined with data_root
            return any(line.split()[-1:] == ['999'] for line in f)

    @staticmethod
    def _scan_class_folders(img_dir):
        wnids = sorted(e.name for e in os.scandir(img_dir)
                       if e.is_dir() and not e.name.startswith('.'))
        if not wnids:
            raise DatasetLayoutError(
                f'ImageNetDataset: {img_dir} has no class folders; for a '
                'flat folder give ann_file with "name label" lines')
        data_list = []
        for label, wnid in enumerate(wnids):
            class_dir = osp.join(img_dir, wnid)
            names = sorted(n for n in os.listdir(class_dir) if _is_image(n))
            if not names:
                raise DatasetLayoutError(
                    f'ImageNetDataset: class folder {class_dir} holds no '
                    f'images ({"/".join(IMG_EXTENSIONS)}); remove it or add '
                    'its images, or every label after it would shift')
            data_list += [dict(img_path=osp.join(class_dir, n),
                               gt_label=label) for n in names]
        return wnids, data_list

    def _read_ann_file(self, img_dir, num_classes):
        data_list = []
        with open(self.ann_file, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2 or not parts[1].isdigit():
                    raise DatasetLayoutError(
                        f'{self.ann_file}:{lineno}: expected "<image> '
                        f'<label>", got {line.strip()!r}')
                label = int(parts[1])
                if label >= num_classes:
                    raise DatasetLayoutError(
                        f'{self.ann_file}:{lineno}: label {label} is out of '
                        f'range for {num_classes} classes')
                data_list.append(dict(img_path=osp.join(img_dir, parts[0]),
                                      gt_label=label))
        if not data_list:
            raise DatasetLayoutError(
                f'ImageNetDataset: annotation file {self.ann_file} is empty')
        return data_list
