"""Parameters and FLOPs of the RepVGG archs, to check them against the paper.

The paper reports the ImageNet classifier (backbone + global average pool +
1000-way fc) in its fused form; we count that model in training form too, to
show what re-parameterization removes.
"""
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer

from .backbones import RepVGG

#: Fused classifier: (params in M, GFLOPs as multiply-adds at 224x224), from
#: the ImageNet tables of Ding et al., "RepVGG: Making VGG-style ConvNets
#: Great Again", CVPR 2021. The paper truncates params and rounds FLOPs.
PAPER_NUMBERS = {
    'A0': (8.30, 1.4),
    'A1': (12.78, 2.4),
    'B0': (14.33, 3.1),
    'A2': (25.49, 5.1),
    'B1g4': (36.12, 7.3),
    'B1g2': (41.36, 8.8),
    'B1': (51.82, 11.8),
    'B2g4': (55.77, 11.3),
    'B2': (80.31, 18.4),
    'B3g4': (75.62, 16.1),
    'B3': (110.96, 26.2),
}


class RepVGGClassifier(nn.Module):
    """The classifier the paper counts; only built for counting."""

    def __init__(self, arch, deploy=False, num_classes=1000):
        super().__init__()
        self.backbone = RepVGG(arch=arch, out_indices=(3, ), deploy=deploy)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.backbone.out_channels[-1], num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.backbone(x)[-1]).flatten(1))


def count_params(arch, deploy=False):
    """Parameters of the classifier, built on the meta device: the count
    needs no memory or initialisation, which matters for B3 and D2se."""
    with torch.device('meta'):
        model = RepVGGClassifier(arch, deploy=deploy)
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_gflops(arch, deploy=False, input_size=224):
    """GFLOPs (multiply-adds, as the paper counts) of one image, measured by
    tracing with mmengine's FlopAnalyzer; BN layers count in training form."""
    model = RepVGGClassifier(arch, deploy=deploy).eval()
    inputs = (torch.zeros(1, 3, input_size, input_size), )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer.total() / 1e9


def arch_stats(arch, input_size=224):
    """Counts of ``arch`` in training and fused form, next to the paper's."""
    paper_params, paper_gflops = PAPER_NUMBERS.get(arch, (None, None))
    return dict(
        arch=arch,
        params_train=count_params(arch),
        params_fused=count_params(arch, deploy=True),
        gflops_train=count_gflops(arch, input_size=input_size),
        gflops_fused=count_gflops(arch, deploy=True, input_size=input_size),
        paper_params=paper_params,
        paper_gflops=paper_gflops)


def truncated_millions(count):
    """``count`` in millions truncated to 2 decimals, the paper's rounding."""
    return count // 10_000 / 100
