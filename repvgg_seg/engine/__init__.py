"""Training hooks (registered in MMSegmentation's ``HOOKS``)."""
from .channels_last import (ChannelsLastHook, contiguous_tensors,
                            speed_up_training, to_channels_last)
from .fast_loss import use_sync_free_losses

__all__ = ['ChannelsLastHook', 'contiguous_tensors', 'speed_up_training',
           'to_channels_last', 'use_sync_free_losses']
