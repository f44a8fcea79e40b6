"""What a demo shows: one attention matrix chosen by layer and head (or fused, or rolled out),
its token labels, and the live check against the from-scratch recomputation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from attn_demos.adapters.precision import tolerance_for
from attn_demos.core.aggregate import FUSIONS, fuse_heads, rollout
from attn_demos.core.pooling import pool_matrix, readable_tokens, word_groups, word_labels

CHECK_TOLERANCE = tolerance_for("float32")  # the tabs load their models in float32: one rule, precision.py
LAYER_MEAN = "mean"


def select(weights: np.ndarray, layer: int | str, head: int | str) -> np.ndarray:
    """(L, H, Tq, Tk) -> (Tq, Tk): one layer (or the mean over layers), one head (or fused)."""
    num_layers, num_heads = weights.shape[:2]
    if layer == LAYER_MEAN:
        per_layer = weights.mean(axis=0)  # (H, Tq, Tk)
    else:
        layer = int(layer)
        if not 0 <= layer < num_layers:
            raise ValueError(f"layer {layer} does not exist: the model has layers 0–{num_layers - 1}")
        per_layer = weights[layer]  # (H, Tq, Tk)
    if isinstance(head, str) and head in FUSIONS:
        return fuse_heads(per_layer, head)  # (Tq, Tk)
    head = int(head)
    if not 0 <= head < num_heads:
        raise ValueError(f"head {head} does not exist: each layer has heads 0–{num_heads - 1}")
    return per_layer[head]  # (Tq, Tk)


def check_badge(max_abs_err: float) -> str:
    """The line shown beside every picture: how far the library is from the from-scratch core."""
    mark = "✓" if max_abs_err <= CHECK_TOLERANCE else "✗ MISMATCH"
    return f"recomputed from scratch: max |Δ| {max_abs_err:.1e} {mark}"


@dataclass
class AttentionView:
    """One matrix on screen, with everything needed to draw, check and export it."""

    title: str
    matrix: np.ndarray  # (Tq, Tk) what is drawn
    query_labels: list[str]
    key_labels: list[str]
    max_abs_err: float  # library vs from-scratch recomputation of exactly this matrix
    notices: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.max_abs_err <= CHECK_TOLERANCE

    @property
    def check_badge(self) -> str:
        return check_badge(self.max_abs_err)

    def to_payload(self) -> dict:
        """Exactly the numbers on screen (for the JSON export)."""
        return {
            "title": self.title,
            "query_tokens": self.query_labels,
            "key_tokens": self.key_labels,
            "matrix": np.round(self.matrix.astype(np.float64), 6).tolist(),
            "recomputed_max_abs_err": self.max_abs_err,
            "notices": self.notices,
        }


def make_view(
    title: str,
    library: np.ndarray,
    recomputed: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    layer: int | str = 0,
    head: int | str = "mean",
    words: bool = False,
    notices: list[str] | None = None,
) -> AttentionView:
    """library, recomputed: (L, H, Tq, Tk). head may be "rollout" (self-attention only)."""
    if head == "rollout":
        shown, check = rollout(library), rollout(recomputed)  # (T, T)
        title = f"{title} · rollout over all layers"
    else:
        shown, check = select(library, layer, head), select(recomputed, layer, head)  # (Tq, Tk)
        title = f"{title} · {describe(layer, head)}"
    error = float(np.abs(shown.astype(np.float64) - check.astype(np.float64)).max())
    if words:
        shown, query_labels, key_labels = pool_words(shown, query_labels, key_labels)
        title = f"{title} · pieces merged into words"
    else:
        query_labels, key_labels = readable_tokens(query_labels), readable_tokens(key_labels)  # "ĠcafÃ©" -> "Ġcafé"
    return AttentionView(title, shown, list(query_labels), list(key_labels), error, list(notices or []))


def pool_words(matrix: np.ndarray, query_labels: list[str], key_labels: list[str]):
    """Merge subword pieces into words on both axes: (Tq, Tk) -> (Wq, Wk) with word labels."""
    query_groups, key_groups = word_groups(query_labels), word_groups(key_labels)
    pooled = pool_matrix(matrix, query_groups, key_groups)  # (Wq, Wk)
    return pooled, word_labels(query_labels, query_groups), word_labels(key_labels, key_groups)


def describe(layer: int | str, head: int | str) -> str:
    layer_text = "mean of layers" if layer == LAYER_MEAN else f"layer {layer}"
    head_text = f"{head} of heads" if isinstance(head, str) else f"head {head}"
    return f"{layer_text}, {head_text}"


class SelfAttentionStack:
    """Mixin for results that hold a self-attention stack `library` (L, H, T, T)."""

    library: np.ndarray

    @property
    def num_layers(self) -> int:
        return self.library.shape[0]

    @property
    def num_heads(self) -> int:
        return self.library.shape[1]

    def head_options(self) -> list:
        """Fusions, every head, and rollout (which self-attention allows)."""
        return head_choices(self.num_heads, with_rollout=True)


def head_choices(num_heads: int, with_rollout: bool) -> list[str | int]:
    """Head options for a dropdown: fusions first, then each head, then rollout if it applies."""
    return list(FUSIONS) + list(range(num_heads)) + (["rollout"] if with_rollout else [])


def parse_head(value) -> int | str:
    """A dropdown value ("mean", "3", 3, "rollout") -> int or name."""
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return value
    return int(value)


def neuron_view_terms(terms: dict, key_labels: list[str], query_label: str, layer: int, head: int) -> dict:
    """adapters.neuron.neuron_terms of one cell, in the names the neuron view draws (sums, reference,
    an additive mask) with the labels and the cell it shows."""
    return {
        "q": terms["q"], "k": terms["k"], "products": terms["products"], "sums": terms["dots"],
        "scale": terms["scale"], "bias": terms["bias"],
        "mask": np.where(terms["mask"], 0.0, -np.inf),  # (Tk,) additive: 0 allowed, −inf masked
        "softcap": terms["softcap"], "logits": terms["logits"], "softmax": terms["softmax"],
        "reference": terms["library"], "max_abs_err": terms["max_abs_err"],
        "key_labels": list(key_labels), "query_label": query_label, "layer": int(layer), "head": int(head),
    }
