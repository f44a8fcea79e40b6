"""Rotary position embeddings (RoFormer, Su et al. 2021), in the half-split layout.

Each of the first `rotary_dim` channels of a head is paired with the channel rotary_dim/2 further
on: pair i = (x[i], x[i + rotary_dim/2]) is rotated by the angle position · θ^(-2i/rotary_dim).
Channels past rotary_dim (partial rotary, as in GPT-NeoX) pass unchanged. Because a rotation by
angle a then by -b is one by a - b, q·k of rotated vectors depends only on the distance between
their positions.
"""

from __future__ import annotations

import torch

# The angles are computed in float32 whatever the model's dtype (transformers does so; a float64
# model's rotary is float32-accurate in the angles, and the recomputation must use the same angles).
ANGLE_DTYPE = torch.float32


def rotary_dimension(head_dim: int, fraction: float) -> int:
    """How many channels of a head are rotated: int(head_dim · fraction), an even number."""
    rotary_dim = int(head_dim * fraction)
    if rotary_dim % 2 or rotary_dim <= 0:
        raise ValueError(f"rotary fraction {fraction} of head size {head_dim} gives {rotary_dim} channels, not a positive even number")
    return rotary_dim


def inverse_frequencies(rotary_dim: int, theta: float, dtype: torch.dtype = ANGLE_DTYPE) -> torch.Tensor:
    """(rotary_dim/2,) θ^(-2i/rotary_dim) for i = 0 … rotary_dim/2 - 1, computed as 1 / θ^(2i/rotary_dim)."""
    exponents = torch.arange(0, rotary_dim, 2, dtype=dtype) / rotary_dim  # (rotary_dim/2,)
    return 1.0 / (theta**exponents)


def rotary_angles(position_ids: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """position_ids (B, T) integers, frequencies (r/2,) -> angles (B, T, r/2) = position · frequency."""
    return position_ids[..., None].to(frequencies.dtype) * frequencies  # (B, T, r/2)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the first 2·(r/2) channels of every head of x (B, H, T, d) by angles (B, T, r/2).

    Pair i is (x[..., i], x[..., i + r/2]): (a, b) -> (a·cos − b·sin, b·cos + a·sin).
    """
    half = angles.shape[-1]
    cos = angles.cos().to(x.dtype)[:, None]  # (B, 1, T, r/2)
    sin = angles.sin().to(x.dtype)[:, None]  # (B, 1, T, r/2)
    first, second, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]  # (B, H, T, r/2) ×2, (B, H, T, d-r)
    return torch.cat([first * cos - second * sin, second * cos + first * sin, rest], dim=-1)  # (B, H, T, d)
