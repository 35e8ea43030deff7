"""Parameters and multiply-adds of a model: one count for the arch table
and the benchmark."""
import torch
from mmengine.analysis import FlopAnalyzer

#: Parameters that inference does not use (MMSeg's training-only heads).
TRAINING_ONLY_PREFIXES = ('auxiliary_head.', )


@torch.no_grad()
def count_complexity(model, inputs=None):
    """``dict(params, macs)`` of ``model``: its parameters without the
    training-only heads, and, given ``inputs``, the multiply-adds of one
    image through ``model(inputs)`` (mmengine's FlopAnalyzer, which counts
    one per multiply-add: the RepVGG paper's "FLOPs"; a segmentor's and an
    ``ImageClassifier``'s default forward is ``mode='tensor'``); None
    without inputs (so a model on the meta device can be counted)."""
    params = sum(p.numel() for name, p in model.named_parameters()
                 if not name.startswith(TRAINING_ONLY_PREFIXES))
    if inputs is None:
        return dict(params=params, macs=None)
    analyzer = FlopAnalyzer(model, (inputs, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return dict(params=params, macs=analyzer.total() / inputs.shape[0])
