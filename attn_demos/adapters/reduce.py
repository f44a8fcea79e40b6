"""Views of long inputs without every layer's maps at once: reducers fed one layer at a time.

A view needs one layer's maps, a head fusion or a rollout, never L×H×T×T together. Each reducer
here says what it `wants` of each site (its heads, a fusion over heads, or nothing) and is a
per-site callback for forward_with_verification (verify.py): it receives that as soon as the
layer has run and been checked, keeps what its view needs and lets the rest go. A fusion is built a
few heads at a time, so a rollout never holds a whole layer; one layer's maps cost about one
layer. Layers no reducer wants are checked without their weights being materialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attn_demos.adapters.extract import Side
from attn_demos.adapters.families import AttentionSite
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.verify import FUSIONS, HEADS, VerifiedForward, forward_with_verification


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

    def wants(self, site: AttentionSite) -> str | None:
        return HEADS if (site.kind, site.layer) == (self.kind, self.layer) else None

    def __call__(self, site: AttentionSite, weights: torch.Tensor) -> None:
        if self.wants(site):
            self.weights = weights  # (B, H, Tq, Tk)


@dataclass
class FuseHeads:
    """Every layer of one kind, heads fused: per_layer[l] (B, Tq, Tk)."""

    kind: str
    how: str = "mean"
    per_layer: list[torch.Tensor] = field(default_factory=list)

    def wants(self, site: AttentionSite) -> str | None:
        return self.how if site.kind == self.kind else None

    def __call__(self, site: AttentionSite, fused: torch.Tensor) -> None:
        if self.wants(site):
            self.per_layer.append(fused)  # (B, Tq, Tk)

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

    def wants(self, site: AttentionSite) -> str | None:
        return self.fusion if site.kind == self.kind else None

    def __call__(self, site: AttentionSite, fused: torch.Tensor) -> None:
        if not self.wants(site):
            return
        layer_map = fused  # (B, T, T), heads fused; another reducer may hold it too: changed on a copy
        if self.residual:
            layer_map = fused.clone()
            layer_map.diagonal(dim1=-2, dim2=-1).add_(1.0)  # + identity
            layer_map /= layer_map.sum(dim=-1, keepdim=True)  # rows sum to 1
        self.joint = layer_map if self.joint is None else layer_map @ self.joint  # (B, T, T)


def reduce_attention(
    loaded: LoadedModel, model_inputs: dict, source: Side, reducers: list, target: Side | None = None
) -> VerifiedForward:
    """One verified forward pass feeding each reducer what it wants of each site, none kept;
    every site is checked, those no reducer wants without materialising their weights. A site
    wanted in one form is built in that form; wanted in several, its heads are built and each
    reducer gets its fusion of them.

    Returns the verification (errors per kind, (B, L, H)); the reducers hold the views.
    """

    def wanted(site: AttentionSite) -> str | None:
        forms = {reducer.wants(site) for reducer in reducers} - {None}
        return None if not forms else forms.pop() if len(forms) == 1 else HEADS

    def feed(site: AttentionSite, built: torch.Tensor) -> None:
        form = wanted(site)
        for reducer in reducers:
            want = reducer.wants(site)
            if want is not None:
                reducer(site, built if want == form else fuse(built, want))

    return forward_with_verification(
        loaded, model_inputs, source, target, on_weights=feed, keep_weights=False, wants_weights=wanted
    )
