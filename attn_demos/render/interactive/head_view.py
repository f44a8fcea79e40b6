"""The head view (BertViz-like) for self- and cross-attention: queries on the left, keys on the
right, one line per (query, key, head) weighted by attention, one colour per head.

In the browser: a layer select (every layer's weights are embedded), colour chips that toggle
heads, hover a token to show only its lines, click it to keep that focus, hide special tokens.

Readable at first (as BertViz: one layer, a few heads, faint weights left out): it opens on
`layer` with the heads given, or the TOP_HEADS heads of that layer with the most weight between
non-special tokens (Σ w² over query and key both not [CLS], [SEP], …: sharp heads first, heads
that only park their weight on [SEP] last); lines of weights below SHOWN_FROM are not drawn
until "show all lines" is ticked. Opacity grows with the weight. With `group`, it follows the
tab's selection (selection.py): Layer, Head and a clicked query row.
"""

from __future__ import annotations

import colorsys

import numpy as np

from attn_demos.core.pooling import display_tokens
from attn_demos.render.interactive.embed import check_labels, labels_and_flags, view_html

DECIMALS = 3  # weights travel as integers in thousandths (rounded in float32: within 0.0005 + 1e-7)
DENSE_UP_TO = 200_000  # L·H·Tq·Tk up to this: every weight ≥ 0.0005 is sent
MIN_WEIGHTS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # larger inputs: the first that fits max_bytes
MAX_BYTES = 2_000_000  # the HTML of one head view
SHOWN_FROM = 0.1  # lines of weights below this are drawn only with "show all lines" (a row has at most 10 above it)
TOP_HEADS = 3  # heads shown at first when no head is chosen (Head is a fusion)
HEAD_COLOURS = (  # Paul Tol's bright + muted qualitative colours, distinct on white
    "#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377",
    "#332288", "#DDAA33", "#117733", "#CC6677", "#88CCEE", "#882255",
)


def head_colours(heads: int) -> list[str]:
    """One colour per head: HEAD_COLOURS, then golden-angle hues beyond them."""
    colours = list(HEAD_COLOURS[:heads])
    for extra in range(heads - len(colours)):
        red, green, blue = colorsys.hls_to_rgb((extra * 0.618034) % 1.0, 0.45, 0.65)
        colours.append(f"#{round(red * 255):02X}{round(green * 255):02X}{round(blue * 255):02X}")
    return colours


def _kept(thousandths: np.ndarray, floor: int) -> np.ndarray:
    """Which weights (in thousandths, any shape) are sent at this floor: ≥ floor, and > 0."""
    return thousandths >= max(floor, 1)


def _sparse_layer(thousandths: np.ndarray, floor: int) -> dict:
    """(H, Tq, Tk) ints -> {"n": entries per (head, query) (H·Tq,), "kw": [key, weight, ...]} in
    head-major, query-minor order, keeping weights ≥ floor (and > 0)."""
    keep = _kept(thousandths, floor)  # (H, Tq, Tk)
    kept = np.flatnonzero(keep)  # (N,) flat indices, head-major then query then key
    pairs = np.stack([kept % keep.shape[-1], thousandths.reshape(-1)[kept]], axis=1)  # (N, 2): key, weight
    return {"n": keep.sum(axis=-1).reshape(-1).tolist(), "kw": pairs.reshape(-1).tolist()}


def _digits(count_at_least: callable, limit: int) -> int:
    """Total decimal digits of a set of non-negative ints below `limit`, from count_at_least(v) =
    how many are ≥ v: each number has one digit, plus one more for each power of ten it reaches."""
    total, power = count_at_least(0), 10
    while power < limit:
        total += count_at_least(power)
        power *= 10
    return total


def _weights_json_bytes(thousandths: np.ndarray, keep: np.ndarray) -> int:
    """The exact length of the "w" lists' numbers and commas for the weights `keep` sends (_kept,
    (L, H, Tq, Tk)), without building them."""
    entries = int(np.count_nonzero(keep))
    per_key = keep.sum(axis=(0, 1, 2))  # (Tk,) how many entries point at each key index
    key_index = np.arange(per_key.shape[0])  # (Tk,)
    key_digits = _digits(lambda v: int(per_key[key_index >= v].sum()), per_key.shape[0])
    kept = thousandths[keep]  # (entries,)
    weight_digits = _digits(lambda v: int(np.count_nonzero(kept >= v)), 10**DECIMALS + 1)
    counts = keep.sum(axis=-1).reshape(-1)  # (L·H·Tq,)
    count_digits = _digits(lambda v: int(np.count_nonzero(counts >= v)), thousandths.shape[-1] + 1)
    return key_digits + weight_digits + 2 * entries + count_digits + counts.shape[0]


def _weights_json_bytes_at_least(keep: np.ndarray) -> int:
    """A lower bound of _weights_json_bytes from the count alone: each kept entry has at least one
    digit of key and of weight and two commas; each row's count at least one digit and a comma."""
    entries = int(np.count_nonzero(keep))  # keep: (L, H, Tq, Tk)
    rows = keep.size // keep.shape[-1]
    return 4 * entries + 2 * rows


def _numbers_exceed(thousandths: np.ndarray, floor: int, max_bytes: int) -> bool:
    """Whether the "w" lists' numbers alone exceed max_bytes: by the bound where it says so (long
    inputs' low floors), else counted exactly."""
    keep = _kept(thousandths, floor)  # (L, H, Tq, Tk)
    return _weights_json_bytes_at_least(keep) > max_bytes or _weights_json_bytes(thousandths, keep) > max_bytes


def head_view_html(
    weights,
    query_tokens: list[str],
    key_tokens: list[str] | None = None,
    title: str = "",
    layer: int = 0,
    layer_labels: list[str] | None = None,
    target_id: str | None = None,
    max_bytes: int = MAX_BYTES,
    heads: list[int] | None = None,
    group: str | None = None,
) -> str:
    """weights (L, H, Tq, Tk) -> the head view (HTML fragment for gr.HTML).

    layer, heads: what it shows at first (heads None: the TOP_HEADS of that layer, see the module
    docstring); group: the tab's selection group, which it then follows (selection.py);
    layer_labels: the layers' names (default 0..L−1), by which the selection names its layer (a
    view of one layer of many is labelled with that layer's number).

    query_tokens, key_tokens: the tokenizer's pieces, shown as a person writes them
    (core.pooling.display_tokens); key_tokens None for self-attention (the query tokens), the
    encoder's tokens for cross-attention. Weights are rounded to 3 decimals; up to DENSE_UP_TO values
    all are sent if they fit max_bytes; else weights below the first of MIN_WEIGHTS that keeps the
    HTML within max_bytes are dropped, and the view states that threshold. A click on a query token emits {"view": "head", "query": i, "token": label}.
    """
    weights = np.asarray(weights)  # (L, H, Tq, Tk)
    if weights.ndim != 4 or 0 in weights.shape:
        raise ValueError(f"head view needs weights of shape (layers, heads, Tq, Tk), got {weights.shape}")
    layers, num_heads, tq, tk = weights.shape
    if heads is not None and not all(0 <= int(h) < num_heads for h in heads):
        raise ValueError(f"heads {list(heads)} are outside 0..{num_heads - 1}")
    cross = key_tokens is not None
    query_tokens = check_labels("query tokens", [str(t) for t in query_tokens], tq)
    key_tokens = check_labels("key tokens", [str(t) for t in key_tokens] if cross else query_tokens, tk)
    queries, query_special = labels_and_flags(display_tokens(query_tokens), query_tokens)
    keys, key_special = labels_and_flags(display_tokens(key_tokens), key_tokens)
    names = [str(i) for i in range(layers)] if layer_labels is None else [str(x) for x in layer_labels]
    check_labels("layer labels", names, layers)
    if not 0 <= layer < layers:
        raise ValueError(f"layer {layer} is outside 0..{layers - 1}")
    if np.fmin.reduce(weights, axis=None) < 0 or np.fmax.reduce(weights, axis=None) > 1 + 1e-6:  # NaN ignored, no copy
        raise ValueError("head view shows attention weights, which lie in [0, 1]")
    thousandths = np.stack([_thousandths(weights[i]) for i in range(layers)])  # (L, H, Tq, Tk) int16
    floors = ([0.0] if weights.size <= DENSE_UP_TO else []) + list(MIN_WEIGHTS)  # dense first where it may fit
    for min_weight in floors:
        floor = round(min_weight * 10**DECIMALS)
        if min_weight != floors[-1] and _numbers_exceed(thousandths, floor, max_bytes):
            continue  # the numbers alone are too many: no need to build this one
        payload = {
            "q": queries,
            "k": keys,
            "qs": query_special,
            "ks": key_special,
            "cross": cross,
            "layers": names,
            "layer": int(layer),
            "heads": num_heads,
            "shown_heads": None if heads is None else [int(h) for h in heads],
            "top": TOP_HEADS,
            "shown_from": SHOWN_FROM,
            "colours": head_colours(num_heads),
            "decimals": DECIMALS,
            "min_weight": min_weight,
            "w": [_sparse_layer(thousandths[i], floor) for i in range(layers)],
        }
        fragment = view_html("head", payload, title, "", target_id, group)
        if len(fragment.encode()) <= max_bytes:
            return fragment
    raise ValueError(f"head view: {layers}×{num_heads} heads of {tq}×{tk} do not fit {max_bytes} bytes; show fewer layers")


def _thousandths(layer_weights: np.ndarray) -> np.ndarray:
    """One layer's weights (H, Tq, Tk) in [0, 1] -> int16 0..1000 (float32 on the way: 3 places are
    far coarser); NaN -> 0."""
    scaled = np.multiply(layer_weights, np.float32(10**DECIMALS), dtype=np.float32)  # (H, Tq, Tk)
    np.fmax(scaled, 0.0, out=scaled)  # NaN -> 0 in one pass (weights are ≥ 0, checked above)
    return np.rint(scaled, out=scaled).astype(np.int16)
