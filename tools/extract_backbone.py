"""Write the RepVGG backbone of a classifier checkpoint on its own.

python tools/extract_backbone.py CLASSIFIER_CKPT OUT.pth

OUT.pth holds bare backbone keys (``stem.*``, ``stage_N.*``), ready for a
segmentation backbone's ``init_cfg=dict(type='Pretrained',
checkpoint='OUT.pth')``. Any layout works as input (ours, official,
mmpretrain; training or fused form); the file is written atomically.
"""
import argparse
import os
import os.path as osp
import sys

import repvgg_seg  # noqa: F401  (registers modules; mmcv-lite/torch compat)
from repvgg_seg.deploy import DeployError
from repvgg_seg.deploy.files import same_file
from repvgg_seg.deploy.loading import (read_checkpoint, save_checkpoint,
                                       state_dict_of)
from repvgg_seg.models.backbones.repvgg_checkpoint import (infer_arch,
                                                           is_deploy_form,
                                                           to_backbone_keys)


def extract_backbone(src, out):
    """Save the backbone of ``src`` to ``out``; return its meta."""
    if same_file(src, out):
        raise DeployError(f'the output {out} would overwrite the input')
    checkpoint = read_checkpoint(src)
    backbone, others = to_backbone_keys(state_dict_of(checkpoint, src))
    if not backbone:
        raise DeployError(f'{src} holds no RepVGG backbone weights (keys '
                          f'like {others[:3]})')
    meta = dict(arch=infer_arch(backbone), fused=is_deploy_form(backbone),
                source_checkpoint=osp.abspath(src))
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    save_checkpoint(dict(meta=meta, state_dict=backbone), out)
    return dict(meta, tensors=len(backbone), dropped=len(others))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='classifier checkpoint')
    parser.add_argument('out', help='backbone checkpoint to write')
    args = parser.parse_args(argv)
    try:
        report = extract_backbone(args.checkpoint, args.out)
    except (DeployError, OSError) as exc:
        sys.exit(f'error: {exc}')
    form = 'fused' if report['fused'] else 'training form'
    print(f'Saved RepVGG-{report["arch"]} backbone ({form}, '
          f'{report["tensors"]} tensors; dropped {report["dropped"]} '
          f'non-backbone keys) to {args.out}')


if __name__ == '__main__':
    main()
