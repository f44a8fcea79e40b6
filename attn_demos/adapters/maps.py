"""AttentionMaps: one structure for the attention of every model kind."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attn_demos.errors import NoAttentionError


@dataclass
class AttentionMaps:
    """The attention of one kind (encoder, decoder, cross or vision) for a batch.

    weights: (B, L, H, Tq, Tk); query_mask (B, Tq) and key_mask (B, Tk) are True on real tokens
    (False on padding, which is never shown as data). Tokens label both axes per example.
    """

    kind: str
    weights: torch.Tensor  # (B, L, H, Tq, Tk)
    query_tokens: list[list[str]]
    key_tokens: list[list[str]]
    query_mask: torch.Tensor  # (B, Tq) bool
    key_mask: torch.Tensor  # (B, Tk) bool

    @property
    def num_layers(self) -> int:
        return self.weights.shape[1]

    @property
    def num_heads(self) -> int:
        return self.weights.shape[2]

    def example(self, index: int = 0) -> AttentionMaps:
        """Example `index` alone with its padding removed: weights (1, L, H, tq, tk)."""
        q_keep = self.query_mask[index]  # (Tq,)
        k_keep = self.key_mask[index]  # (Tk,)
        weights = self.weights[index][:, :, q_keep][:, :, :, k_keep]  # (L, H, tq, tk)
        return AttentionMaps(
            kind=self.kind,
            weights=weights[None],
            query_tokens=[[t for t, keep in zip(self.query_tokens[index], q_keep.tolist()) if keep]],
            key_tokens=[[t for t, keep in zip(self.key_tokens[index], k_keep.tolist()) if keep]],
            query_mask=q_keep[q_keep][None],
            key_mask=k_keep[k_keep][None],
        )


def stack_layers(per_layer: tuple | list, what: str) -> torch.Tensor:
    """Tuple over layers of (B, H, Tq, Tk) -> (B, L, H, Tq, Tk); loud if the model gave none."""
    if not per_layer or any(t is None for t in per_layer):
        raise NoAttentionError(
            f"the model returned no {what} attention weights; load it with "
            'attn_implementation="eager" (sdpa returns none)'
        )
    return torch.stack(list(per_layer), dim=1)
