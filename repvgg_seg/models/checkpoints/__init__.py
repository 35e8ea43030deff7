"""Checkpoints of RepVGG and RDRNet models: reading (safe, any layout),
layout conversion, strict loading and the trained-config comparison."""
from .layouts import (FUSED_CONV, LAYOUTS, CheckpointMismatch, arch_label,
                      infer_arch, is_deploy_form, is_rdrnet_state,
                      rdrnet_arch, to_backbone_keys, to_layout,
                      unwrap_state_dict)
from .reading import (backbone_arch, dataset_meta_of, is_fused_checkpoint,
                      read_backbone_state, read_checkpoint, refuse_rdrnet,
                      state_dict_of)
from .strict import (fuse_training_weights, load_matching_shapes,
                     load_pretrained, load_weights, shape_differences)

__all__ = [
    'FUSED_CONV', 'LAYOUTS', 'CheckpointMismatch', 'arch_label',
    'backbone_arch', 'dataset_meta_of', 'fuse_training_weights',
    'infer_arch', 'is_deploy_form', 'is_fused_checkpoint', 'is_rdrnet_state',
    'load_matching_shapes', 'load_pretrained', 'load_weights',
    'rdrnet_arch', 'read_backbone_state', 'read_checkpoint', 'refuse_rdrnet',
    'shape_differences', 'state_dict_of', 'to_backbone_keys', 'to_layout',
    'unwrap_state_dict'
]
