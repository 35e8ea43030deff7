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

DDRNet's head (``DDRHead``, also RDRNet's) overrides ``loss_by_feat``: two
logits, each upsampled and given to its own loss, usually MMSeg's
``OhemCrossEntropy``. That loss sorts the valid pixels' true-class
probabilities, picks pixels by boolean indexing (dynamic shapes) and
compares a GPU value with the threshold in Python, so it waits for the GPU
twice per call; so does its class weight, copied from a Python list to the
GPU on every call. :func:`ohem_cross_entropy` is the same loss with fixed
shapes: the threshold from ``topk`` and masked sums.
"""
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmseg.models.decode_heads import DDRHead
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import CrossEntropyLoss, OhemCrossEntropy
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


def ddr_loss_by_feat(head, seg_logits, batch_data_samples):
    """``DDRHead.loss_by_feat`` (mmseg 1.x): the context and spatial logits
    upsampled as matrix products, the accuracy without waiting for the
    GPU; the losses are the head's own modules (OHEM ones made sync-free by
    :func:`use_sync_free_losses`)."""
    context_logit, spatial_logit = seg_logits
    seg_label = head._stack_batch_gt(batch_data_samples)
    size = seg_label.shape[2:]
    context_logit = resize_bilinear(context_logit, size, head.align_corners)
    spatial_logit = resize_bilinear(spatial_logit, size, head.align_corners)
    seg_label = seg_label.squeeze(1)
    return dict(
        loss_context=head.loss_decode[0](context_logit, seg_label),
        loss_spatial=head.loss_decode[1](spatial_logit, seg_label),
        acc_seg=top1_accuracy(context_logit, seg_label, head.ignore_index))


def ohem_cross_entropy(ohem, score, target):
    """``OhemCrossEntropy.forward`` of ``ohem`` with fixed shapes: the same
    threshold (the true-class probability at rank ``min_kept`` among the
    valid pixels, or the highest one if there are fewer, and at least
    ``thresh``), the mean class-weighted cross-entropy of the valid pixels
    below it, times ``loss_weight``; 0 if every pixel is ignored, NaN if
    none is below the threshold (gradients 0 in both cases, as MMSeg's).

    The probability is ``exp`` of the log-softmax the loss needs anyway
    (MMSeg: a second softmax), so a pixel within float rounding of the
    threshold may fall on the other side."""
    weight = getattr(ohem, 'sync_free_class_weight', None)
    log_prob = F.log_softmax(score, dim=1)
    pixel_losses = F.nll_loss(
        log_prob, target,
        weight=None if weight is None else weight.to(score.dtype),
        ignore_index=ohem.ignore_label, reduction='none').flatten()
    valid = target != ohem.ignore_label
    prob = log_prob.detach().gather(
        1, target.masked_fill(~valid, 0).unsqueeze(1)).exp().flatten()
    # ignored pixels last in every order: +inf is above any probability
    prob = prob.masked_fill(~valid.flatten(), float('inf'))
    # the lowest min_kept + 1 hold rank min_kept when there are that many
    # valid pixels, else every valid one; either way the largest finite
    # value is MMSeg's pred[min(min_kept, num_valid - 1)]
    lowest = prob.topk(min(ohem.min_kept + 1, prob.numel()), largest=False,
                       sorted=False).values
    rank_value = lowest.masked_fill(lowest.isinf(), float('-inf')).max()
    keep = prob < rank_value.clamp(min=ohem.thresh)
    kept = keep.sum()
    mean = torch.where(keep, pixel_losses, 0).sum() / kept.clamp(min=1)
    loss = torch.where(kept > 0, ohem.loss_weight * mean, float('nan'))
    return torch.where(valid.any(), loss, 0)


def use_sync_free_ohem(ohem, device=None):
    """Give one ``OhemCrossEntropy`` :func:`ohem_cross_entropy` as its
    forward, on the instance, and its class weight as a (non-persistent)
    buffer on ``device``, copied once instead of every call."""
    if ohem.class_weight is not None:
        ohem.register_buffer('sync_free_class_weight', torch.tensor(
            ohem.class_weight, dtype=torch.float64, device=device),
            persistent=False)
    ohem.forward = types.MethodType(ohem_cross_entropy, ohem)


def _sync_free_loss_by_feat(head):
    """The sync-free ``loss_by_feat`` for ``head``, or None for heads this
    module does not know: those with a loss_by_feat of their own (e.g.
    PIDNet's), DDR heads with losses other than MMSeg's OHEM and
    cross-entropy, and heads already given one."""
    if not isinstance(head, BaseDecodeHead) or 'loss_by_feat' in vars(head):
        return None
    own = type(head).loss_by_feat
    if own is BaseDecodeHead.loss_by_feat:
        return loss_by_feat
    if own is DDRHead.loss_by_feat and isinstance(
            head.loss_decode, nn.ModuleList) and all(
                type(loss) in (OhemCrossEntropy, CrossEntropyLoss)
                for loss in head.loss_decode):
        return ddr_loss_by_feat
    return None


def use_sync_free_losses(model):
    """Give every decode head of ``model`` that uses MMSeg's own
    ``loss_by_feat`` (PSP, FCN, ASPP, ... heads) :func:`loss_by_feat`, and
    every ``DDRHead`` with MMSeg's OHEM / cross-entropy losses
    :func:`ddr_loss_by_feat` and sync-free OHEM losses, on the instances;
    heads with other losses of their own (e.g. PIDNet's) are left alone.
    Returns how many heads changed."""
    count = 0
    for head in list(model.modules()):
        fast = _sync_free_loss_by_feat(head)
        if fast is None:
            continue
        if fast is ddr_loss_by_feat:
            device = next(head.parameters()).device
            for loss in head.loss_decode:
                if type(loss) is OhemCrossEntropy:
                    use_sync_free_ohem(loss, device)
        head.loss_by_feat = types.MethodType(fast, head)
        count += 1
    return count
