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


def sliding_window_mask(query_length: int, key_length: int, window: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, Tq, Tk): query i (the last Tq of Tk positions) sees key j when i − window < j ≤ i.

    A window of w keeps the w most recent keys, the query's own included; combine with padding.
    """
    if window < 1:
        raise ValueError(f"a sliding window needs at least one key, got {window}")
    query_positions = torch.arange(key_length - query_length, key_length, device=device)[:, None]  # (Tq, 1)
    key_positions = torch.arange(key_length, device=device)[None, :]  # (1, Tk)
    distance = query_positions - key_positions  # (Tq, Tk)
    return ((distance >= 0) & (distance < window))[None, None]


def positions_from_padding(key_is_real: torch.Tensor) -> torch.Tensor:
    """(B, T) 1/0 flags -> (B, T) positions counting real tokens only (left padding gets 0)."""
    real = key_is_real.long()
    return (real.cumsum(dim=1) - 1).clamp(min=0) * real
