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

from attn_demos.adapters import verify
from attn_demos.adapters.compare import forward_at_function
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
    overwrites_input = True  # the fused map it is given becomes the new joint: given its own (reduce_attention)

    def wants(self, site: AttentionSite) -> str | None:
        return self.fusion if site.kind == self.kind else None

    def __call__(self, site: AttentionSite, fused: torch.Tensor) -> None:
        if not self.wants(site):
            return
        layer_map = fused  # (B, T, T), heads fused; this reducer's own, so changed in place
        if self.residual:
            layer_map.diagonal(dim1=-2, dim2=-1).add_(1.0)  # + identity
            layer_map /= layer_map.sum(dim=-1, keepdim=True)  # rows sum to 1
        if self.joint is not None:
            multiply_in_place(layer_map, self.joint)  # Â_l · R
        self.joint = layer_map  # (B, T, T); the previous joint is let go


def multiply_in_place(left: torch.Tensor, right: torch.Tensor) -> None:
    """left <- left @ right for (B, T, T) maps, a block of rows at a time (as many as
    verify.CHUNK_BYTES hold): a row of the product needs only that row of `left`, so the product
    takes no second T×T matrix."""
    batch, rows, cols = left.shape
    per_block = max(1, verify.CHUNK_BYTES // (batch * cols * left.element_size()))
    for start in range(0, rows, per_block):
        block = slice(start, start + per_block)
        left[:, block] = left[:, block] @ right  # (B, rows in block, T)


def reduce_attention(
    loaded: LoadedModel, model_inputs: dict, source: Side, reducers: list, target: Side | None = None
) -> VerifiedForward:
    """One verified forward pass feeding each reducer what it wants of each site, none kept;
    every site is checked, those no reducer wants without materialising their weights. A site
    wanted in one form is built in that form; wanted in several, its heads are built and each
    reducer gets its fusion of them. A reducer that overwrites what it is given (Rollout) gets a
    copy only where another reducer is given the same tensor.

    Returns the verification (errors per kind, (B, L, H)); the reducers hold the views.
    """

    def form_of(wants: list[str | None]) -> str | None:
        forms = set(wants) - {None}
        return None if not forms else forms.pop() if len(forms) == 1 else HEADS

    def wanted(site: AttentionSite) -> str | None:
        return form_of([reducer.wants(site) for reducer in reducers])

    def feed(site: AttentionSite, built: torch.Tensor) -> None:
        wants = [reducer.wants(site) for reducer in reducers]  # asked once per site here
        form = form_of(wants)
        sharing = wants.count(form)  # reducers given `built` itself
        for reducer, want in zip(reducers, wants):
            if want is None:
                continue
            given = built if want == form else fuse(built, want)  # a fusion of the heads is new: its own
            if given is built and sharing > 1 and getattr(reducer, "overwrites_input", False):
                given = built.clone()  # the others keep `built` as it is
            reducer(site, given)

    return forward_with_verification(
        loaded, model_inputs, source, target, on_weights=feed, keep_weights=False, wants_weights=wanted
    )


def reduce_at_function(loaded: LoadedModel, model_inputs: dict, reducers: list) -> dict[str, torch.Tensor]:
    """reduce_attention at the attention-function depth: each call's recomputed weights (B, H, Tq, Tk),
    layer l of a kind being its l-th call, go to the reducers that want them, none kept. Every call
    is checked through its output (weights·v against the function's), as the from-weights view is.
    Returns kind -> (B, L, H) relative output errors."""
    def feed(kind: str, layer: int, library, recomputed: torch.Tensor) -> None:
        site = AttentionSite(kind, layer, f"{kind} call {layer}", loaded.model)  # the reducers read kind and layer
        for reducer in reducers:
            want = reducer.wants(site)
            if want is None:
                continue
            given = recomputed if want == HEADS else fuse(recomputed, want)  # (B, H, Tq, Tk) or (B, Tq, Tk)
            if given is recomputed and getattr(reducer, "overwrites_input", False):
                given = recomputed.clone()
            reducer(site, given)

    _, record = forward_at_function(loaded, model_inputs, on_weights=feed, by_output=True)
    return record.errors()[0]
