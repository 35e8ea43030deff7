"""ImageNet-pretrained RepVGG weights published by OpenMMLab (mmpretrain's
model zoo, ``configs/repvgg/metafile.yml``): training form, mmpretrain key
layout, which :func:`~.checkpoints.load_pretrained` reads as is.

The segmentation configs name these URLs in ``model.backbone.init_cfg``
(mirrored there, checked by the tests); mmengine's loader downloads each
once into torch hub's cache (``~/.cache/torch/hub/checkpoints``).
"""
import os.path as osp

from ..compat import DownloadError, cached_download
from ..compat.checkpoint_sources import HTTP_PREFIXES
from ..utils.errors import InvalidArgument, PathNotFound
from .repvgg_archs import ARCH_SETTINGS

MMPRETRAIN_REPVGG = 'https://download.openmmlab.com/mmclassification/v0/repvgg/'

#: arch -> URL of its ImageNet-1k weights (training form).
PRETRAINED_URLS = {
    arch: MMPRETRAIN_REPVGG + name for arch, name in {
        'A0': 'repvgg-A0_8xb32_in1k_20221213-60ae8e23.pth',
        'A1': 'repvgg-A1_8xb32_in1k_20221213-f81bf3df.pth',
        'A2': 'repvgg-A2_8xb32_in1k_20221213-a8767caf.pth',
        'B0': 'repvgg-B0_8xb32_in1k_20221213-5091ecc7.pth',
        'B1': 'repvgg-B1_8xb32_in1k_20221213-d17c45e7.pth',
        'B1g2': 'repvgg-B1g2_8xb32_in1k_20221213-ae6428fd.pth',
        'B1g4': 'repvgg-B1g4_8xb32_in1k_20221213-a7a4aaea.pth',
        'B2': 'repvgg-B2_8xb32_in1k_20221213-d8b420ef.pth',
        'B2g4': 'repvgg-B2g4_8xb32_in1k_20221213-0c1990eb.pth',
        'B3': 'repvgg-B3_8xb32_in1k_20221213-927a329a.pth',
        'B3g4': 'repvgg-B3g4_8xb32_in1k_20221213-e01cb280.pth',
        'D2se': 'repvgg-D2se_3rdparty_4xb64-autoaug-lbs-mixup-coslr-200e_'
                'in1k_20210909-cf3139b7.pth',
    }.items()
}


def pretrained_url(arch):
    """The URL of ``arch``'s ImageNet weights; an arch without a published
    file (B2g2, B3g2) gets an error that says so and what to do."""
    if arch in PRETRAINED_URLS:
        return PRETRAINED_URLS[arch]
    if arch in ARCH_SETTINGS:
        raise InvalidArgument(
            f'no ImageNet weights are published for RepVGG-{arch} (OpenMMLab '
            f'publishes {", ".join(PRETRAINED_URLS)}): train it from scratch '
            '(model.backbone.init_cfg=None) or give your own checkpoint '
            '(model.backbone.init_cfg.checkpoint=PATH)')
    raise InvalidArgument(f'unknown RepVGG arch {arch!r}: one of '
                          f'{", ".join(ARCH_SETTINGS)}')


def pretrained_sources(node, key='model'):
    """``(config key, checkpoint)`` of every ``Pretrained`` init_cfg in a
    model config."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get(
                'type') == 'Pretrained' and init_cfg.get('checkpoint'):
            yield f'{key}.init_cfg.checkpoint', str(init_cfg['checkpoint'])
        for name, value in node.items():
            if name != 'init_cfg':
                yield from pretrained_sources(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from pretrained_sources(value, f'{key}.{i}')


def fetch_pretrained(model_cfg):
    """Make sure every pretrained file of ``model_cfg`` is there before a
    run starts: download URLs into the cache (once), and refuse a missing
    local file, each with one line that says what to do."""
    for key, source in pretrained_sources(model_cfg):
        options = (f'pass a local copy with --cfg-options {key}=PATH, or '
                   f'train from scratch with --cfg-options '
                   f'{key.rsplit(".", 1)[0]}=None')
        if source.startswith(HTTP_PREFIXES):
            try:
                cached_download(source)
            except DownloadError as exc:
                raise DownloadError(f'{key}: {exc} Or {options}.') from None
        elif '://' not in source and not osp.isfile(osp.expanduser(source)):
            raise PathNotFound(f'{key}: pretrained checkpoint {source} does '
                               f'not exist: {options}')
