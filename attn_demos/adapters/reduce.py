"""Views of long inputs without every layer's maps at once: reducers fed one layer at a time.

A view needs one layer's maps, a head fusion or a rollout, never L×H×T×T together. Each reducer
here says which sites it `wants` and is a per-site callback for forward_with_verification
(verify.py): it receives a wanted layer's weights (B, H, Tq, Tk) as soon as that layer has run and
been checked, keeps what its view needs and lets the rest go, so the peak extra memory is about one
layer's maps. Layers no reducer wants are checked without their weights being materialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attn_demos.adapters.extract import Side
from attn_demos.adapters.families import AttentionSite
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.verify import VerifiedForward, forward_with_verification

FUSIONS = ("mean", "max", "min")  # as attn_demos.core.aggregate.FUSIONS


def fuse(weights: torch.Tensor, how: str) -> torch.Tensor:
    """(B, H, Tq, Tk) -> (B, Tq, Tk) by mean, max or min over heads."""
    if how not in FUSIONS:
        raise ValueError(f"unknown head fusion {how!r}; choose one of {', '.join(FUSIONS)}")
    if how == "mean":
        return weights.mean(dim=1)
    return getattr(weights, how)(dim=1).values


@dataclass
class KeepLayer:
    """One layer's maps: weights (B, H, Tq, Tk) of (kind, layer)."""

    kind: str
    layer: int
    weights: torch.Tensor | None = None

    def wants(self, site: AttentionSite) -> bool:
        return (site.kind, site.layer) == (self.kind, self.layer)

    def __call__(self, site: AttentionSite, weights: torch.Tensor) -> None:
        if self.wants(site):
            self.weights = weights


@dataclass
class FuseHeads:
    """Every layer of one kind, heads fused: per_layer[l] (B, Tq, Tk)."""

    kind: str
    how: str = "mean"
    per_layer: list[torch.Tensor] = field(default_factory=list)

    def wants(self, site: AttentionSite) -> bool:
        return site.kind == self.kind

    def __call__(self, site: AttentionSite, weights: torch.Tensor) -> None:
        if self.wants(site):
            self.per_layer.append(fuse(weights, self.how))  # (B, Tq, Tk)

    @property
    def maps(self) -> torch.Tensor:
        return torch.stack(self.per_layer, dim=1)  # (B, L, Tq, Tk)


@dataclass
class Rollout:
    """Attention rollout of one self-attention kind, built layer by layer: R = Â_L · … · Â_1 with
    Â_l the head-fused map of layer l plus the identity, rows renormalised (as core.aggregate.rollout).
    """

    kind: str
    fusion: str = "mean"
    residual: bool = True
    joint: torch.Tensor | None = None  # (B, T, T) so far

    def wants(self, site: AttentionSite) -> bool:
        return site.kind == self.kind

    def __call__(self, site: AttentionSite, weights: torch.Tensor) -> None:
        if not self.wants(site):
            return
        layer_map = fuse(weights, self.fusion)  # (B, T, T), a new tensor: changed in place below
        if self.residual:
            layer_map.diagonal(dim1=-2, dim2=-1).add_(1.0)  # + identity
            layer_map /= layer_map.sum(dim=-1, keepdim=True)  # rows sum to 1
        self.joint = layer_map if self.joint is None else layer_map @ self.joint  # (B, T, T)


def reduce_attention(
    loaded: LoadedModel, model_inputs: dict, source: Side, reducers: list, target: Side | None = None
) -> VerifiedForward:
    """One verified forward pass feeding each reducer the weights of the sites it wants, none kept;
    every site is checked, those no reducer wants without materialising their weights.

    Returns the verification (errors per kind, (B, L, H)); the reducers hold the views.
    """

    def wanted(site: AttentionSite) -> bool:
        return any(reducer.wants(site) for reducer in reducers)

    def feed(site: AttentionSite, weights: torch.Tensor) -> None:
        for reducer in reducers:
            if reducer.wants(site):
                reducer(site, weights)

    return forward_with_verification(
        loaded, model_inputs, source, target, on_weights=feed, keep_weights=False, wants_weights=wanted
    )
