"""The neuron view: how one attention weight is made, from the query and key vectors up.

Input: the dict of attn_demos.adapters.neuron.neuron_terms for one (layer, head, query token):

    q (d,)  k (Tk, d)  products (Tk, d) = q_i·k_i  sums (Tk,)  scale (float)
    bias (Tk,) or None  mask (Tk,) or None  logits (Tk,)  softmax (Tk,)  checked_against (Tk,)
    key_labels [Tk str]  query_label str  layer int  head int   (optional: softcap float or None,
    checked_against_label str: what that row is, default DEFAULT_CHECKED_AGAINST_LABEL)

Shown: q and each k as coloured cells, the products, their sum, × scale, + bias, + mask, the
logit, the softmax and, beside it, the row it is checked against (the library weight, or under sdpa the
verified weight shown) and |Δ|. Hover a key's row
for its terms written out: the seed tutorial's three lines (q·k, × scale, softmax) on a real model.
The values shown are those given: the view computes nothing but the per-row |Δ|.

With target_id and the stack's shape (layers, heads) and the query's index, the view has its own
layer and head selects: choosing one emits {"view": "neuron", "layer": l, "head": h, "query": i},
and the tab shows that head everywhere (one selection, see selection.py).
"""

from __future__ import annotations

import numpy as np

from attn_demos.render.interactive.embed import check_labels, display_label, fixed_point, view_html
from attn_demos.render.interactive.scale import ColourScale, legend_html

VECTOR_DECIMALS = 4  # q, k and the products are sent rounded to 4 places
ROW_DECIMALS = 9  # sums, logits, softmax and checked_against are sent rounded to 9 places
DEFAULT_CHECKED_AGAINST_LABEL = "library weight"  # the heading of the column checked against when the terms name none
REQUIRED = ("q", "k", "products", "sums", "scale", "logits", "softmax", "checked_against", "key_labels",
            "query_label", "layer", "head")


def _row(terms: dict, name: str, length: int) -> list | None:
    """A (Tk,) entry rounded to ROW_DECIMALS (None stays None; non-finite -> None)."""
    value = terms.get(name)
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64).reshape(-1)  # (Tk,)
    if array.shape[0] != length:
        raise ValueError(f"neuron terms: {name} has {array.shape[0]} entries for {length} keys")
    rounded = np.round(array, ROW_DECIMALS)
    return [float(v) if np.isfinite(v) else None for v in rounded]


def neuron_view_html(
    terms: dict,
    title: str = "",
    target_id: str | None = None,
    shape: tuple[int, int] | None = None,
    query: int | None = None,
) -> str:
    """neuron_terms' dict -> the neuron view (HTML fragment for gr.HTML); shape (layers, heads) and
    query (the row's index) with target_id: the layer and head selects (see the module docstring)."""
    missing = [name for name in REQUIRED if name not in terms]
    if missing:
        raise ValueError(f"neuron terms are missing {', '.join(missing)}")
    q = np.asarray(terms["q"], dtype=np.float64).reshape(-1)  # (d,)
    k = np.asarray(terms["k"], dtype=np.float64)  # (Tk, d)
    products = np.asarray(terms["products"], dtype=np.float64)  # (Tk, d)
    if k.ndim != 2 or k.shape[1] != q.shape[0] or products.shape != k.shape:
        raise ValueError(f"neuron terms: q {q.shape}, k {k.shape} and products {products.shape} do not match")
    tk, d = k.shape
    labels = [display_label(str(t)) for t in check_labels("key labels", terms["key_labels"], tk)]
    vector_max = float(np.nanmax(np.abs(np.concatenate([q, k.reshape(-1)])))) or 1.0
    product_max = float(np.nanmax(np.abs(products))) or 1.0
    vectors, terms_scale = ColourScale(-vector_max, vector_max, "RdBu_r"), ColourScale(-product_max, product_max, "PuOr_r")
    softcap = terms.get("softcap")
    payload = {
        "query": display_label(str(terms["query_label"])),
        "layer": int(terms["layer"]),
        "head": int(terms["head"]),
        "d": d,
        "keys": labels,
        "vdecimals": VECTOR_DECIMALS,
        "q": fixed_point(q, VECTOR_DECIMALS),
        "k": fixed_point(k, VECTOR_DECIMALS),  # (Tk·d,)
        "p": fixed_point(products, VECTOR_DECIMALS),  # (Tk·d,)
        "scale": float(terms["scale"]),
        "softcap": None if softcap is None else float(softcap),
        "checked_against_label": str(terms.get("checked_against_label") or DEFAULT_CHECKED_AGAINST_LABEL),
        "vstops": vectors.stops(),
        "vmax": vector_max,
        "pstops": terms_scale.stops(),
        "pmax": product_max,
        **{name: _row(terms, name, tk) for name in ("sums", "bias", "mask", "logits", "softmax", "checked_against")},
        "pick": None if shape is None or query is None else {"layers": int(shape[0]), "heads": int(shape[1]), "query": int(query)},
    }
    static = legend_html(vectors, "q and k components", 3) + " " + legend_html(terms_scale, "products q_i·k_i", 3)
    return view_html("neuron", payload, title, f'<div class="attn-legends">{static}</div>', target_id)
