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
    """Layers of (B, H, Tq, Tk) -> (B, L, H, Tq, Tk); loud if the model gave none.

    Given a list, each entry is let go of (set to None) once copied, so stacking holds one layer
    more than the maps rather than twice them; a tuple's layers stay with whoever holds it."""
    if not per_layer or any(t is None for t in per_layer):
        raise NoAttentionError(
            f"the model returned no {what} attention weights; load it with "
            'attn_implementation="eager" (sdpa returns none)'
        )
    shape = per_layer[0].shape  # (B, H, Tq, Tk)
    stacked = per_layer[0].new_empty((shape[0], len(per_layer), *shape[1:]))  # (B, L, H, Tq, Tk)
    for index in range(len(per_layer)):
        if per_layer[index].shape != shape:
            raise ValueError(f"{what} layer {index} has shape {tuple(per_layer[index].shape)}, layer 0 {tuple(shape)}")
        stacked[:, index] = per_layer[index]
        if isinstance(per_layer, list):
            per_layer[index] = None
    return stacked


def take_layers(outputs, name: str, what: str) -> torch.Tensor:
    """The model output's `name` attentions stacked (B, L, H, Tq, Tk). The output then holds views
    of the stack instead of the library's own tensors, each freed once copied."""
    layers = list(getattr(outputs, name, None) or ())
    if layers:
        outputs[name] = ()  # the output lets go of them (a ModelOutput keeps attribute and item)
    stacked = stack_layers(layers, what)
    outputs[name] = tuple(stacked.unbind(dim=1))  # (B, H, Tq, Tk) per layer
    return stacked
