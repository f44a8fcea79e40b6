"""Boolean attention masks (True = may attend), built from padding flags; torch only."""

from __future__ import annotations

import torch


def key_padding_mask(key_is_real: torch.Tensor) -> torch.Tensor:
    """(B, Tk) 1/0 flags -> (B, 1, 1, Tk) boolean mask, broadcast over heads and queries."""
    return key_is_real.bool()[:, None, None, :]


def causal_mask(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, T, T) lower-triangular mask: query i sees keys 0..i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None]


def decoder_mask(key_is_real: torch.Tensor) -> torch.Tensor:
    """Causal AND key padding: (B, 1, T, T)."""
    return causal_mask(key_is_real.shape[1], key_is_real.device) & key_padding_mask(key_is_real)
