"""Write the RepVGG backbone of a classifier checkpoint on its own.

python tools/extract_backbone.py CLASSIFIER_CKPT OUT.pth

OUT.pth holds bare backbone keys (``stem.*``, ``stage_N.*``), ready for a
segmentation backbone's ``init_cfg=dict(type='Pretrained',
checkpoint='OUT.pth')``. Any layout works as input (ours, official,
mmpretrain; training or fused form); the file is written atomically.
"""
import argparse

from repvgg_seg_cli import checkpoint_file, output_file, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', type=checkpoint_file,
                        help='classifier checkpoint')
    parser.add_argument('out', type=output_file('backbone checkpoint',
                                                'backbone.pth'),
                        help='backbone checkpoint to write')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import extract_backbone
    report = extract_backbone(args.checkpoint, args.out)
    form = 'fused' if report['fused'] else 'training form'
    print(f'Saved RepVGG-{report["arch"]} backbone ({form}, '
          f'{report["tensors"]} tensors; dropped {report["dropped"]} '
          f'non-backbone keys) to {args.out}')


if __name__ == '__main__':
    run_cli(main)
