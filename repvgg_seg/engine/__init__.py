"""Training hooks (registered in MMSegmentation's ``HOOKS``)."""
from .channels_last import (ChannelsLastHook, contiguous_tensors,
                            to_channels_last)

__all__ = ['ChannelsLastHook', 'contiguous_tensors', 'to_channels_last']
