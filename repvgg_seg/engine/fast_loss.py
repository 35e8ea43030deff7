"""MMSeg's decode-head losses without host syncs or atomics, for short GPU
iterations.

``BaseDecodeHead.loss_by_feat`` upsamples the logits to the label size and
logs the pixel accuracy. On a 0.05 s channels_last iteration both cost more
than they should: the accuracy's ``topk`` over classes took ~1.5 ms per head
on an H200 and its boolean indexing waits for the GPU (twice per iteration,
once per head), and the upsampling's backward scatters with atomics
(~0.8 ms per head). Here the same loss is computed with the upsampling as
two matrix products and the accuracy as an argmax and a masked mean: equal
values up to float rounding (an exact tie between two classes' logits may
count differently), the same dict keys.
"""
import types

import torch
import torch.nn as nn

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from ..models.ops import resize_bilinear


def top1_accuracy(logits, target, ignore_index=None):
    """``mmseg.models.losses.accuracy(logits, target, topk=1,
    ignore_index=...)`` (percent, shape ``(1,)``) without waiting for the
    GPU."""
    eps = torch.finfo(torch.float32).eps
    correct = logits.argmax(dim=1) == target
    if ignore_index is None:
        total = target.numel() + eps
    else:
        valid = target != ignore_index
        correct &= valid
        total = valid.sum().float() + eps
    return ((correct.sum().float() + eps) * 100.0 / total).reshape(1)


def loss_by_feat(head, seg_logits, batch_data_samples):
    """``BaseDecodeHead.loss_by_feat`` (mmseg 1.x), computed as described in
    the module docstring."""
    seg_label = head._stack_batch_gt(batch_data_samples)
    seg_logits = resize_bilinear(seg_logits, seg_label.shape[2:],
                                 head.align_corners)
    seg_weight = (head.sampler.sample(seg_logits, seg_label)
                  if head.sampler is not None else None)
    seg_label = seg_label.squeeze(1)
    losses = (head.loss_decode if isinstance(head.loss_decode, nn.ModuleList)
              else [head.loss_decode])
    loss = {}
    for loss_decode in losses:
        value = loss_decode(seg_logits, seg_label, weight=seg_weight,
                            ignore_index=head.ignore_index)
        name = loss_decode.loss_name
        loss[name] = loss[name] + value if name in loss else value
    loss['acc_seg'] = top1_accuracy(seg_logits, seg_label, head.ignore_index)
    return loss


def use_sync_free_losses(model):
    """Give every decode head of ``model`` that uses MMSeg's own
    ``loss_by_feat`` (PSP, FCN, ASPP, ... heads; not those that override it,
    e.g. PIDNet's) :func:`loss_by_feat` instead, on the instance; returns
    how many heads changed."""
    count = 0
    for module in model.modules():
        if (isinstance(module, BaseDecodeHead)
                and type(module).loss_by_feat is BaseDecodeHead.loss_by_feat
                and 'loss_by_feat' not in vars(module)):
            module.loss_by_feat = types.MethodType(loss_by_feat, module)
            count += 1
    return count
