"""Channels-last (NHWC) training and testing on GPUs.

cuDNN's fastest fp16/bf16 tensor-core convolutions work on NHWC tensors; in
NCHW every convolution pays layout transposes. A RepVGG net is nothing but
3x3 and 1x1 convolutions, so mixed-precision training runs about twice as
fast once the weights and each batch are channels_last. Only the memory
layout changes: values, shapes, state-dict keys and checkpoints do not (the
hook writes checkpoints contiguous, exactly as without it). At that speed
the rest of an iteration shows, so the hook also takes the decode heads'
losses without host syncs (:mod:`.fast_loss`).
"""
import logging

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

from mmseg.registry import HOOKS
from ..models.ops import pool_with_matmuls
from .fast_loss import use_sync_free_losses

CHANNELS_LAST = torch.channels_last


def to_channels_last(model):
    """Move the 4-d weights and buffers of ``model`` to channels_last, make
    its data preprocessor hand out channels_last batches, and pool with
    matrix products: PyTorch's adaptive pooling kernels for NHWC input are
    slow (PSPNet's pyramid, forward and backward)."""
    model.to(memory_format=CHANNELS_LAST)
    pool_with_matmuls(model)
    _avoid_onednn_on_cpu(model)
    preprocessor = getattr(model, 'data_preprocessor', None)
    if (preprocessor is not None
            and not getattr(preprocessor, '_channels_last_hook', None)):
        preprocessor._channels_last_hook = (
            preprocessor.register_forward_hook(_batch_to_channels_last))
    return model


def speed_up_training(model, sync_free_losses=True):
    """What :class:`ChannelsLastHook` does to ``model`` (the benchmark does
    the same): :func:`to_channels_last` and, unless told not to, the decode
    losses without host syncs; returns how many heads got those."""
    to_channels_last(model)
    return use_sync_free_losses(model) if sync_free_losses else 0


def _avoid_onednn_on_cpu(model):
    """oneDNN's CPU convolution backward corrupts memory in channels_last
    (torch 2.13: a strided 1x1 conv on a few input channels, e.g. RepVGG's
    stem 1x1 branch on the image, from 64x128 crops up), so a CPU model in
    channels_last runs PyTorch's own conv kernels. GPUs are not affected."""
    param = next(model.parameters(), None)
    if param is not None and param.device.type == 'cpu' \
            and torch.backends.mkldnn.enabled:
        torch.backends.mkldnn.enabled = False
        print_log('channels_last on the CPU: oneDNN convolutions turned off '
                  '(their channels_last backward is unsafe)',
                  logger='current', level=logging.WARNING)


def _batch_to_channels_last(module, args, output):
    inputs = output.get('inputs') if isinstance(output, dict) else None
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        output['inputs'] = inputs.contiguous(memory_format=CHANNELS_LAST)
    return output


def contiguous_tensors(obj):
    """``obj`` (nested dicts / lists of tensors) with every tensor in the
    default contiguous layout, as a run without channels_last saves it."""
    if isinstance(obj, torch.Tensor):
        return obj.contiguous()
    if isinstance(obj, dict):
        return type(obj)((k, contiguous_tensors(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(contiguous_tensors(v) for v in obj)
    return obj


def _uses_amp(optim_wrapper):
    if isinstance(optim_wrapper, OptimWrapperDict):
        return any(_uses_amp(w) for w in optim_wrapper.values())
    return isinstance(optim_wrapper, AmpOptimWrapper)


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Train, validate and test in channels_last on a GPU.

    Args:
        amp_only (bool): convert only when the run uses mixed precision
            (``AmpOptimWrapper``, or a val/test loop with ``fp16=True``),
            where NHWC tensor-core kernels pay off; fp32 runs stay NCHW.
        on_cpu (bool): also convert on the CPU. Off: a CPU run stays NCHW
            (the hook does nothing); tests turn it on.
        enabled (bool): ``False`` keeps the hook in the config but inert
            (``--cfg-options custom_hooks.N.enabled=False``).
        sync_free_losses (bool): decode heads with MMSeg's own
            ``loss_by_feat``, and DDR heads with MMSeg's OHEM /
            cross-entropy losses, compute their losses without host syncs
            (:func:`~.fast_loss.use_sync_free_losses`).
    """

    priority = 'VERY_LOW'  # after the hooks that load or initialise weights

    def __init__(self, amp_only=True, on_cpu=False, enabled=True,
                 sync_free_losses=True):
        self.amp_only = amp_only
        self.on_cpu = on_cpu
        self.enabled = enabled
        self.sync_free_losses = sync_free_losses
        self.active = False

    def before_train(self, runner):
        self._maybe_convert(runner, _uses_amp(runner.optim_wrapper))
        if self.active and isinstance(runner.optim_wrapper,
                                      (OptimWrapper, OptimWrapperDict)):
            _optimizer_state_to_channels_last(runner.optim_wrapper)

    def before_val(self, runner):
        self._maybe_convert(runner, getattr(runner.val_loop, 'fp16', False))

    def before_test(self, runner):
        self._maybe_convert(runner, getattr(runner.test_loop, 'fp16', False))

    def before_save_checkpoint(self, runner, checkpoint):
        if self.active:
            for key in ('state_dict', 'ema_state_dict', 'optimizer'):
                if key in checkpoint:
                    checkpoint[key] = contiguous_tensors(checkpoint[key])

    def _maybe_convert(self, runner, mixed_precision):
        if self.active or not self.enabled:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        param = next(model.parameters(), None)
        on_gpu = param is not None and param.device.type != 'cpu'
        if not (on_gpu or self.on_cpu) or (self.amp_only
                                             and not mixed_precision):
            return
        heads = speed_up_training(model, self.sync_free_losses)
        self.active = True
        print_log('ChannelsLastHook: model and batches are channels_last '
                  '(NHWC); checkpoints are saved contiguous (NCHW) as usual'
                  + (f'; {heads} decode head losses without host syncs'
                     if heads else ''),
                  logger='current', level=logging.INFO)


def _optimizer_state_to_channels_last(optim_wrapper):
    """Resumed momentum buffers come back NCHW; match them to the params."""
    wrappers = (optim_wrapper.values()
                if isinstance(optim_wrapper, OptimWrapperDict)
                else [optim_wrapper])
    for wrapper in wrappers:
        for state in wrapper.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() == 4:
                    state[key] = value.contiguous(memory_format=CHANNELS_LAST)
