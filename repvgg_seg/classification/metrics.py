"""Top-k classification accuracy."""
from mmengine.evaluator import BaseMetric

from mmseg.registry import METRICS


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent, logged as ``accuracy/top1`` etc.

    A prediction is top-k right when fewer than ``k`` classes score higher
    than the label (so with fewer than ``k`` classes, always).

    Args:
        topk (Sequence[int]): the ``k`` values.
    """

    default_prefix = 'accuracy'

    def __init__(self, topk=(1, 5), collect_device='cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples):
        # Keep only the label's rank (classes scored higher), not the scores:
        # 50k x 1000 floats per rank would be gathered otherwise.
        for sample in data_samples:
            score = sample['pred_score']
            self.results.append(
                (score > score[sample['gt_label']]).sum().item())

    def compute_metrics(self, results):
        return {f'top{k}': 100 * sum(rank < k for rank in results) /
                len(results) for k in self.topk}
