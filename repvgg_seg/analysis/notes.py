"""What a benchmark section says about how it was measured (rendered under
its tables, saved in its JSON)."""


def common_notes(args, device):
    notes = [
        f'Timing: {args.warmup} warm-up rounds, then the median and p10-p90 '
        f'of {args.repeat} calls, the forms of a model called in turn (a '
        'drifting load hits both alike), '
        + ('each between CUDA events; cudnn.benchmark on.'
           if device.type == 'cuda' else 'each timed with perf_counter.'),
        'Params: of the inference model (an auxiliary head, used only in '
        'training, left out; DDRHead\'s, part of the decode head as in '
        'the RDRNet and DDRNet tables, counted). GMACs: multiply-adds per '
        'image (mmengine FlopAnalyzer; the paper\'s "FLOPs"); TFLOP/s = '
        '2 x GMACs x images/s of the raw forward.',
        'Peak memory: extra memory at the peak over what was held before '
        'the timed calls (activations and workspaces, not the weights): '
        + ('torch.cuda.max_memory_allocated.' if device.type == 'cuda'
           else 'peak RSS (VmHWM, reset per measurement).'),
    ]
    if device.type == 'cuda' and not args.fp16:
        notes.append('fp32: convolutions use TF32 (PyTorch\'s default, '
                     'torch.backends.cudnn.allow_tf32).')
    return notes


def segmentation_notes(args):
    height, width = args.shape
    weights = (f'checkpoint {args.checkpoint}' if args.checkpoint
               and not args.sweep else 'random, BN statistics measured on '
               'random inputs')
    return [
        f'Input: {args.batch_size}x3x{height}x{width} normalised float '
        f'tensor already on the device; weights: {weights}.',
        '"raw": model forward to logits (1/8 scale); "full": logits '
        'upsampled (bilinear) to the input size + argmax, the whole '
        'inference work. FPS is of "full".',
        'Baselines "(mmseg)" are built from MMSeg\'s own configs (no '
        'pretrained weights) with every conv+BN pair folded, for a fair '
        'comparison with the fused RepVGG and RDRNet models (RDRNet: its '
        'blocks fused, then its conv+BN pairs folded too); a BN that comes '
        'before its conv (the pyramid pooling of PIDNet, DDRNet and RDRNet, '
        'DDRHead) cannot be folded exactly and is kept ("N BN kept"). '
        '"labels fused = unfused": the check that folding changed nothing '
        '(fp32, TF32 off).',
        'mIoU: published Cityscapes val mIoU (single scale) of the config '
        '(repvgg_seg.analysis.published: the RepVGG paper for ours, the '
        'RDRNet README (trained without ImageNet) for RDRNet, MMSeg\'s '
        'model zoo for theirs), not measured here; "-": none published.',
    ]


def fast_path_notes(args, images_note):
    height, width = args.shape
    return [
        f'End to end: {args.batch_size}x{height}x{width}x3 uint8 BGR '
        'frame already on the device -> uint8 label map. Agreement: '
        'share of pixels whose label equals the fp32 model\'s (TF32 '
        f'off, MMSeg\'s data preprocessor) on {images_note} resized '
        f'to {height}x{width}. Every model gets the same treatment; norm '
        'layers that cannot be folded stay (in fp16).',
        'Variant: precision (fp32 = TF32 off; -autocast: fp32 weights '
        'under autocast, otherwise weights cast once), cl = channels_last '
        '(adaptive pooling as matrix products, MatMulAdaptiveAvgPool2d) '
        'or nchw, graph = CUDA graph replay or eager, relu = '
        'conv+bias+ReLU in one cuDNN call (where a conv feeds a ReLU '
        'directly), cpost = upsampling + argmax compiled into one kernel, '
        'fold = the PSP pyramid folded through the bottleneck conv '
        '(FoldedPSPHead, exact), compile = torch.compile of the whole '
        'frame (default mode), nobench = cudnn.benchmark off (see '
        'repvgg_seg.analysis.variants). setup: seconds from the model to '
        'the first result (fusion, autotuning, compiling, graph capture; '
        'cuDNN\'s autotuning results are cached per process, so later '
        'variants of a dtype and layout reuse them).',
    ]
