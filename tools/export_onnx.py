"""Export a fused segmentor or classifier to ONNX and check it.

python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W]
    [--dynamic] [--fp16] [--with-argmax] [--opset 17]
    [--check-images 'data/citymini/leftImg8bit/val/*/*.png']

CHECKPOINT may be in training form (fused here) or fused (tools/fuse.py).
The graph takes the normalised NCHW image (mean, std and channel order are
in its metadata) and outputs logits at the input size, or the label map
with --with-argmax. OUT.onnx is written only after onnx.checker, a check
that the graph holds only fused ops, and onnxruntime matching PyTorch.
Then, e.g.: trtexec --onnx=OUT.onnx --fp16 --saveEngine=OUT.engine
"""
import argparse

from repvgg_seg_cli import (bounded, checkpoint_file, config_file,
                            output_file, positive, run_cli)

#: Opsets the TorchScript exporter writes that hold every op used here
#: (Resize with sizes needs 11); larger sides than this are no camera frame.
MIN_OPSET, MAX_SIDE = 11, 8192


def newest_opset():
    """The newest opset torch's TorchScript exporter writes (imports torch,
    so only when --opset is given)."""
    import torch
    return getattr(torch.onnx._constants,
                   'ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET',
                   torch.onnx._constants.ONNX_MAX_OPSET)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', type=config_file,
                        help='training or deploy config')
    parser.add_argument('checkpoint', type=checkpoint_file,
                        help='training or fused checkpoint')
    parser.add_argument('out', type=output_file('ONNX model', 'model.onnx'),
                        help='ONNX file to write')
    parser.add_argument('--shape', nargs=2, metavar=('H', 'W'),
                        type=positive(int, MAX_SIDE),
                        help=f'input size, each side 1..{MAX_SIDE} '
                        '(default: the test pipeline\'s)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 weights, input and output')
    parser.add_argument('--with-argmax', action='store_true',
                        help='output the label map instead of the logits')
    parser.add_argument('--opset',
                        type=bounded(int, MIN_OPSET, newest_opset, 'an opset'),
                        help=f'ONNX opset, {MIN_OPSET} up to the newest this '
                        'torch writes (default: 17)')
    parser.add_argument('--check-images', metavar='GLOB',
                        help='images to compare labels on (default: up to 8 '
                        'validation images of the config, if present)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from repvgg_seg.apis import export_onnx
    from repvgg_seg.deploy.onnx_export import DEFAULT_OPSET
    report = export_onnx(args.config, args.checkpoint, args.out,
                         shape=args.shape, dynamic=args.dynamic,
                         fp16=args.fp16, with_argmax=args.with_argmax,
                         opset=args.opset or DEFAULT_OPSET,
                         check_images=args.check_images)
    for name, check in report['checks'].items():
        diff = '' if check['max_abs_diff'] is None else (
            f'max abs diff {check["max_abs_diff"]:.2e} (relative '
            f'{check["relative_diff"]:.2e}), ')
        print(f'onnxruntime vs PyTorch on {name}: {diff}labels agree on '
              f'{100 * check["labels_agree"]:.3f}% of the outputs')
    ops = ', '.join(f'{op} x{n}' for op, n in
                    report['image_path_ops'].most_common())
    height, width = report['shape']
    print(f'Graph of {sum(report["ops"].values())} nodes; on the path from '
          f'the image: {ops}')
    print(f'wrote {report["out"]}: RepVGG-{report["arch"]}, '
          f'{report["precision"]}, {height}x{width}'
          f'{" (dynamic)" if args.dynamic else ""}, outputs '
          f'{report["output"]}; input {report["preprocessing"]}')


if __name__ == '__main__':
    run_cli(main)
