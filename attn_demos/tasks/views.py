"""What a demo shows: one attention matrix chosen by layer and head (or fused, or rolled out),
its token labels, and the live check against the from-scratch recomputation."""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field

import numpy as np

from attn_demos.adapters.attention_function import AT_FUNCTION, FROM_WEIGHTS
from attn_demos.adapters.precision import tolerance_for
from attn_demos.core.aggregate import FUSIONS, fuse_heads, rollout
from attn_demos.core.pooling import display_tokens, pool_matrix, word_groups, word_labels
from attn_demos.errors import BadInputError

CHECK_TOLERANCE = tolerance_for("float32")  # the tabs load their models in float32: one rule, precision.py
LAYER_MEAN = "mean"
LIBRARY, OUTPUT = "library", "output"  # what a view's check measured: eager and sdpa (module doc of tasks/checked.py)


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


BADGE_DEPTHS = {  # how deep the check went, as the badge says it (adapters/attention_function.py)
    FROM_WEIGHTS: "recomputed from weights",
    AT_FUNCTION: "checked at the attention function",
}


def check_badge(error: float, measure: str = LIBRARY, depth: str = FROM_WEIGHTS) -> str:
    """The line shown beside every picture: how deep the shown weights were checked, how, and the result.

    depth FROM_WEIGHTS: q, k, v re-derived from the module's weights; AT_FUNCTION: the core from the
    q, k, v the module passed to transformers' attention function. LIBRARY (eager): max |library −
    recomputed|. OUTPUT (sdpa, no library weights exist): the recomputed weights applied to the
    module's values, max relative error against its own output.
    """
    passed = error <= CHECK_TOLERANCE
    mark = "✓" if passed else "✗ MISMATCH"
    if measure == OUTPUT:
        return (
            f"{BADGE_DEPTHS[depth]}, verified through the model's own output (sdpa): "
            f"max relative error {error:.1e} {'≤' if passed else '>'} {CHECK_TOLERANCE:.0e} {mark}"
        )
    return f"{BADGE_DEPTHS[depth]}: max |Δ| {error:.1e} {mark}"


def check_fields(error: float, measure: str = LIBRARY, depth: str = FROM_WEIGHTS) -> dict:
    """The check in an export or preview, under a name that says what was measured, and its depth."""
    if measure == OUTPUT:
        return {
            "verified_through": "the model's own output (sdpa): no library weights exist; the matrix is the core's",
            "output_max_relative_error": error,
            "tolerance": CHECK_TOLERANCE,
            "depth": depth,
        }
    return {"recomputed_max_abs_err": error, "depth": depth}


@dataclass
class SelectedMap:
    """One matrix on screen, with everything needed to draw, check and export it."""

    title: str
    matrix: np.ndarray  # (Tq, Tk) what is drawn
    query_labels: list[str]  # (Tq,) as a person writes them (core.pooling.display_tokens), or merged words
    key_labels: list[str]  # (Tk,)
    error: float  # LIBRARY: library vs recomputed of exactly this matrix; OUTPUT: worst relative output error of its heads
    notices: list[str] = field(default_factory=list)
    measure: str = LIBRARY
    query_pieces: list[str] = field(default_factory=list)  # the tokenizer's pieces the rows come from, markers and all
    key_pieces: list[str] = field(default_factory=list)
    depth: str = FROM_WEIGHTS  # how deep the check went (check_badge)

    @property
    def verified(self) -> bool:
        return self.error <= CHECK_TOLERANCE

    @property
    def check_badge(self) -> str:
        return check_badge(self.error, self.measure, self.depth)

    def check_fields(self) -> dict:
        return check_fields(self.error, self.measure, self.depth)

    def to_payload(self) -> dict:
        """Exactly the numbers on screen (for the JSON export); the tokenizer's raw pieces only in
        their own fields (as many as the matrix's rows and columns unless pieces were merged into words)."""
        return {
            "title": self.title,
            "query_tokens": self.query_labels,
            "key_tokens": self.key_labels,
            "query_pieces": self.query_pieces,
            "key_pieces": self.key_pieces,
            "matrix": np.round(self.matrix.astype(np.float64), 6).tolist(),
            **self.check_fields(),
            "notices": self.notices,
        }


def select_map(
    title: str,
    library: np.ndarray | None,
    recomputed: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    layer: int | str = 0,
    head: int | str = "mean",
    words: bool = False,
    notices: list[str] | None = None,
    output_errors: np.ndarray | None = None,
    depth: str = FROM_WEIGHTS,
) -> SelectedMap:
    """library, recomputed: (L, H, Tq, Tk). head may be "rollout" (self-attention only).

    library None (sdpa: the kernel returns no weights): the recomputed weights are shown, checked
    by output_errors (L, H), their relative output error (tasks/checked.py). depth: how deep the
    recomputation went (the badge names it)."""
    if library is None and output_errors is None:
        raise ValueError("without library weights the view needs the output check's errors")
    stack = recomputed if library is None else library  # (L, H, Tq, Tk) what is drawn
    if head == "rollout":
        shown = rollout(stack)  # (T, T)
        check = None if library is None else rollout(recomputed)
        title = f"{title} · rollout over all layers"
    else:
        shown = select(stack, layer, head)  # (Tq, Tk)
        check = None if library is None else select(recomputed, layer, head)
        title = f"{title} · {describe(layer, head)}"
    if library is None:
        error, measure = heads_error(output_errors, layer, head), OUTPUT
    else:
        error, measure = float(np.abs(shown.astype(np.float64) - check.astype(np.float64)).max()), LIBRARY
    pieces = list(query_labels), list(key_labels)
    if words:
        shown, query_labels, key_labels = pool_words(shown, query_labels, key_labels)
        title = f"{title} · pieces merged into words"
    else:
        query_labels, key_labels = display_tokens(query_labels), display_tokens(key_labels)  # "ĠcafÃ©" -> "café"
    return SelectedMap(title, shown, query_labels, key_labels, error, list(notices or []), measure, *pieces, depth)


def max_abs_difference(first: np.ndarray, second: np.ndarray) -> float:
    """max |first − second| of two (L, …) stacks in float64, one layer at a time (a whole stack in
    float64 would be twice its size again)."""
    return max(float(np.abs(first[i].astype(np.float64) - second[i]).max()) for i in range(len(first)))


def heads_error(output_errors: np.ndarray, layer: int | str, head: int | str) -> float:
    """The worst relative output error (L, H) of the heads a view is made of: one layer or all
    (mean of layers, rollout), one head or all (fusions, rollout)."""
    layers = slice(None) if layer == LAYER_MEAN or head == "rollout" else int(layer)
    heads = slice(None) if isinstance(head, str) else int(head)
    return float(np.max(output_errors[layers, heads]))


def pool_words(matrix: np.ndarray, query_labels: list[str], key_labels: list[str]):
    """Merge subword pieces into words on both axes: (Tq, Tk) -> (Wq, Wk) with word labels."""
    query_groups, key_groups = word_groups(query_labels), word_groups(key_labels)
    pooled = pool_matrix(matrix, query_groups, key_groups)  # (Wq, Wk)
    return pooled, word_labels(query_labels, query_groups), word_labels(key_labels, key_groups)


def describe(layer: int | str, head: int | str) -> str:
    """What select(weights, layer, head) computed, in words: "layer 3, head 5", "layer 3, mean of
    heads", "head 2, mean over layers" (head 2 of every layer, averaged), "mean of layers, max of heads"."""
    if layer == LAYER_MEAN and not isinstance(head, str):
        return f"head {head}, mean over layers"
    layer_text = "mean of layers" if layer == LAYER_MEAN else f"layer {layer}"
    head_text = f"{head} of heads" if isinstance(head, str) else f"head {head}"
    return f"{layer_text}, {head_text}"


def sharpest_head(weights: np.ndarray, query: int, special_keys: list[bool], layer: int | str = LAYER_MEAN) -> tuple[int, int]:
    """The (layer, head) whose row `query` of weights (L, H, Tq, Tk) has the most weight between
    tokens, Σ w² over the keys that are not special ([CLS] and [SEP] sinks left out), within
    `layer`, or over every layer for "mean": the head a neuron view shows when Head is a fusion
    (the head view ranks its first heads the same way)."""
    keep = ~np.asarray(special_keys, dtype=bool)  # (Tk,)
    if not keep.any():
        keep[:] = True
    rows = weights[:, :, query, :][..., keep].astype(np.float64)  # (L, H, K)
    scores = (rows**2).sum(axis=-1)  # (L, H)
    if layer != LAYER_MEAN:
        head = int(np.argmax(scores[int(layer)]))
        return int(layer), head
    best = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(best[0]), int(best[1])


class SelfAttentionStack:
    """Mixin for results that hold a self-attention stack: `library` (L, H, T, T), None under sdpa;
    `recomputed` (L, H, T, T); `output_errors` (L, H) under sdpa, else None."""

    library: np.ndarray | None
    recomputed: np.ndarray
    output_errors: np.ndarray | None

    @property
    def shown(self) -> np.ndarray:
        """(L, H, T, T) the weights the views draw: the library's (eager), else the verified recomputed ones."""
        return self.recomputed if self.library is None else self.library

    @property
    def measure(self) -> str:
        return OUTPUT if self.library is None else LIBRARY

    @property
    def num_layers(self) -> int:
        return self.shown.shape[0]

    @property
    def num_heads(self) -> int:
        return self.shown.shape[1]

    @property
    def check_summary(self) -> str:
        """How the whole stack was checked, in a few words (for titles of views drawn from all of it)."""
        if self.library is None:
            return f"recomputed maps verified through the model's own output (sdpa) to {float(self.output_errors.max()):.1e}"
        difference = max_abs_difference(self.library, self.recomputed)
        return f"maps that match the from-scratch recomputation to {difference:.1e}"

    def head_options(self) -> list:
        """Fusions, every head, and rollout (which self-attention allows)."""
        return head_choices(self.num_heads, with_rollout=True)


def head_choices(num_heads: int, with_rollout: bool) -> list[str | int]:
    """Head options for a dropdown: fusions first, then each head, then rollout if it applies."""
    return list(FUSIONS) + list(range(num_heads)) + (["rollout"] if with_rollout else [])


HEAD_NAMES = (*FUSIONS, "rollout")
WHOLE_NUMBER = re.compile(r"\s*-?[0-9]+\s*")
PLAIN_VALUE = re.compile(r"'?[\w.+-]{1,24}'?")  # a repr safe to repeat in a message shown as Markdown


def parse_head(value) -> int | str:
    """A Head control's value ("mean", "3", 3, "rollout") -> a head name or number; anything else
    ("foo", 2.9, True) is a BadInputError, never rounded."""
    if isinstance(value, str) and value.strip() in HEAD_NAMES:
        return value.strip()
    return parse_index(value, f"head must be {', '.join(HEAD_NAMES)} or a head number")


def parse_index(value, expected: str) -> int:
    """A layer or head number from a control: a whole number, or its text ("3", "-1"). 1.7, True
    or "foo" are refused with `expected`, and the value only where it is plain (a visitor's text
    never reaches the page as markup)."""
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value):
        return int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy's integers too
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    shown = repr(value) if PLAIN_VALUE.fullmatch(repr(value)) else f"a value of {len(str(value))} characters"
    raise BadInputError(f"{expected}, not {shown}")


def neuron_view_terms(terms: dict, key_labels: list[str], query_label: str, layer: int, head: int) -> dict:
    """adapters.neuron.neuron_terms of one cell, in the names the neuron view draws (sums, checked_against,
    an additive mask) with the labels and the cell it shows."""
    return {
        "q": terms["q"], "k": terms["k"], "products": terms["products"], "sums": terms["dots"],
        "scale": terms["scale"], "bias": terms["bias"],
        "mask": np.where(terms["mask"], 0.0, -np.inf),  # (Tk,) additive: 0 allowed, −inf masked
        "softcap": terms["softcap"], "logits": terms["logits"], "softmax": terms["softmax"],
        "checked_against": terms["checked_against"], "checked_against_label": terms["checked_against_label"], "max_abs_err": terms["max_abs_err"],
        "key_labels": list(key_labels), "query_label": query_label, "layer": int(layer), "head": int(head),
        "check_text": neuron_check_text(terms),
    }


def neuron_check_text(terms: dict) -> str:
    """What a neuron view's softmax was compared with, and how far it was, for its title."""
    against = "the library's weights" if "library" in terms else "the verified weights shown (sdpa)"
    return f"softmax vs {against}: max |Δ| {terms['max_abs_err']:.1e}"
