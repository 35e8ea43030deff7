from .backbones import ARCH_SETTINGS, RepVGG, RepVGGBlock

__all__ = ['ARCH_SETTINGS', 'RepVGG', 'RepVGGBlock']
