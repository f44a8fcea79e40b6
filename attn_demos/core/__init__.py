"""The from-scratch attention core: pure math on numpy arrays and torch tensors, no Hugging Face."""

from attn_demos.core import numpy_attention, torch_attention
from attn_demos.core.aggregate import FUSIONS, fuse_heads, rollout, with_residual
from attn_demos.core.validation import ShapeError, check_qkv

__all__ = [
    "FUSIONS",
    "ShapeError",
    "check_qkv",
    "fuse_heads",
    "numpy_attention",
    "rollout",
    "torch_attention",
    "with_residual",
]
