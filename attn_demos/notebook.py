"""show(): a model's attention inline in a notebook (Jupyter, VS Code, Colab), with no server.

    from attn_demos import show
    maps = show("embedded:all-MiniLM-L6-v2", "The animal didn't cross the street.")
    maps.weights        # (L, H, Tq, Tk) numpy: the weights the views draw
    maps.verified       # every layer and head matched the from-scratch recomputation

The views are the app's (heatmap, layer × head grid, head view; an overlay for images), drawn by
the same script (render/interactive), which travels inside the output: nothing is served. Layer,
Head and a click on the grid redraw in the browser from the maps embedded in the output (panel.py),
every layer's when they fit MAX_EMBEDDED_VALUES, else the chosen layer's, else the chosen map only;
the output says which. See docs/notebook.md.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attn_demos.core.aggregate import FUSIONS
from attn_demos.core.pooling import display_tokens
from attn_demos.errors import BadInputError
from attn_demos.render.interactive.embed import read_payload
from attn_demos.render.interactive.head_grid import head_grid_html
from attn_demos.render.interactive.head_view import head_view_html
from attn_demos.render.interactive.heatmap import heatmap_html
from attn_demos.render.interactive.overlay import overlay_html
from attn_demos.render.interactive.page import INTERACTIVE_CSS, INTERACTIVE_JS
from attn_demos.render.interactive.panel import panel_html
from attn_demos.tasks.views import (
    CHECK_TOLERANCE,
    LIBRARY,
    OUTPUT,
    check_badge,
    max_abs_difference,
    parse_index,
    select_map,
)

MAX_EMBEDDED_VALUES = 600_000  # numbers of the maps one output embeds (≤ ~4 MB of HTML at 4 places; one ViT-base layer fits)
HEAD_VIEW_BYTES = 800_000  # the head view drops its faintest lines beyond this (it says which), as the Explorer's
MEAN = "mean"  # the Head choice that averages a layer's heads (the only fusion the panel offers)
OVERLAY_CMAP = "inferno"
NOTEBOOK_CSS = ".attn-notebook .attn-needs-script { display: none; }\n"  # the app's note names launch(): this output has its own


@dataclass
class AttentionMaps:
    """What show() drew: every layer's and head's weights, their tokens and the live check."""

    model: str  # the model's display name (Hub id, folder name, or the embedded MiniLM's name)
    kind: str  # "self-attention", "cross-attention", "attention of each generated token", "vision self-attention"
    weights: np.ndarray  # (L, H, Tq, Tk) the weights drawn: the library's (eager), else the recomputed ones (sdpa)
    recomputed: np.ndarray  # (L, H, Tq, Tk) the core's from-scratch weights
    tokens: list[str]  # (Tq,) the queries, as a person writes them
    key_tokens: list[str]  # (Tk,) the keys
    max_abs_err: float | None  # eager: worst |library − recomputed| over every layer and head; None under sdpa
    verified: bool  # every layer and head within the check's tolerance
    badge: str  # the check in one line, as the app's badge says it
    output_text: str | None = None  # the translation or continuation, where the model wrote one
    labels: list[tuple[str, float]] | None = None  # an image's top-5 (label, probability)
    html: str = field(default="", repr=False)  # the output: views, data and script in one fragment

    def __repr__(self) -> str:
        layers, heads, tq, tk = self.weights.shape
        return (
            f"AttentionMaps({self.model}: {self.kind}, {layers} layers × {heads} heads, {tq}×{tk} tokens; {self.badge})"
        )

    def display(self) -> None:
        """Show the views (again) in the notebook."""
        from IPython.display import HTML, display

        display(HTML(self.html))

    def save(self, path: str | Path) -> Path:
        """Write the views as a page of their own (opens in any browser, offline)."""
        path = Path(path)
        path.write_text(f"<!doctype html>\n<meta charset='utf-8'>\n<title>attn-demos</title>\n{self.html}\n", encoding="utf-8")
        return path


@dataclass
class _Stack:
    """One attention stack of a run, as select_map takes it."""

    title: str
    library: np.ndarray | None  # (L, H, Tq, Tk); None under sdpa
    recomputed: np.ndarray  # (L, H, Tq, Tk)
    query_pieces: list[str]  # (Tq,) the tokenizer's pieces
    key_pieces: list[str]  # (Tk,)
    output_errors: np.ndarray | None = None  # (L, H) sdpa: relative output error per layer and head
    notices: list[str] = field(default_factory=list)

    @property
    def shown(self) -> np.ndarray:
        return self.recomputed if self.library is None else self.library  # (L, H, Tq, Tk)

    def view(self, layer: int, head: int | str):
        return select_map(
            self.title, self.library, self.recomputed, self.query_pieces, self.key_pieces, layer, head,
            notices=self.notices, output_errors=self.output_errors,
        )


def show(
    model: str | None = None,
    text: str | None = None,
    *,
    image=None,
    generate: int | None = None,
    layer: int = 0,
    head: int | str = MEAN,
) -> AttentionMaps:
    """Run `model` once and show its attention inline; returns the maps.

    model: a Hub id or a local folder, loaded as the app's tabs load it; None: the app's model for
    what is asked (the embedded all-MiniLM-L6-v2 for a text). What is drawn follows the model and
    the arguments: `image` (a path, PIL image or array) -> an image model's patch attention;
    `generate=N` -> a decoder-only model continues `text` by N tokens and shows each new token's
    attention; an encoder-decoder model -> the cross-attention of its translation of `text`; any
    other text model -> the self-attention of `text`. layer, head: the map drawn first (head a
    number or "mean").

    In a notebook the views are displayed at once; elsewhere nothing is printed (maps.save(path)
    writes them as a page)."""
    maps = attention_maps(model, text, image=image, generate=generate, layer=layer, head=head)
    if _in_notebook():
        maps.display()
    return maps


def attention_maps(
    model: str | None = None,
    text: str | None = None,
    *,
    image=None,
    generate: int | None = None,
    layer: int = 0,
    head: int | str = MEAN,
) -> AttentionMaps:
    """What show() computes and draws, without displaying it."""
    if image is not None:
        return _image_maps(model, image, layer, head)
    if text is None:
        raise BadInputError("give a text to show (or image=...)")
    if generate is not None:
        return _generation_maps(model, text, generate, layer, head)
    if _is_encoder_decoder(model):
        return _translation_maps(model, text, layer, head)
    return _self_attention_maps(model, text, layer, head)


# ---------------------------------------------------------------- one run per kind


def _self_attention_maps(model, text, layer, head) -> AttentionMaps:
    from attn_demos.tasks.explorer import explore

    result = explore(text, source=model)
    stack = _Stack("self-attention", result.library, result.recomputed, result.tokens, result.tokens,
                   result.output_errors, result.notices)
    return _maps(result.model, stack, layer, head, head_view=True)


def _translation_maps(model, text, layer, head) -> AttentionMaps:
    from attn_demos.tasks.seq2seq import translate

    result = translate(text, source=model)
    stack = _Stack("cross-attention", result.cross, result.cross_recomputed, result.target_tokens, result.source_tokens,
                   result.cross_output_errors, result.notices)
    return _maps(result.model, stack, layer, head, head_view=True, output_text=result.output_text)


def _generation_maps(model, text, new_tokens, layer, head) -> AttentionMaps:
    from attn_demos.tasks.generation import generate

    result = generate(text, source=model, max_new_tokens=int(new_tokens))
    stack = _Stack("attention of each generated token", result.generated, result.recomputed, result.generated_tokens,
                   result.key_tokens, None, result.notices)
    return _maps(result.model, stack, layer, head, head_view=True, output_text=result.output_text)


def _image_maps(model, image, layer, head) -> AttentionMaps:
    from attn_demos.tasks.images import classify_image

    result = classify_image(image, source=model)
    stack = _Stack("vision self-attention", result.library, result.recomputed, result.tokens, result.tokens,
                   result.output_errors, result.notices)
    prefix = result.prefix  # [CLS] (DeiT: and its distillation token) before the patches

    def overlay(weights: np.ndarray) -> str:  # (Tq, Tk) -> [CLS]'s row over the photo
        patches = weights[0, prefix:].reshape(result.grid)  # (rows, cols)
        return overlay_html(result.image, patches, title="[CLS] → patches, in the map above", cmap=OVERLAY_CMAP, label="[CLS] → patch attention")

    return _maps(result.model, stack, layer, head, head_view=False, labels=result.labels, overlay=overlay)


def _is_encoder_decoder(model: str | None) -> bool:
    """Whether `model` (None: the Explorer's) is an encoder-decoder, from its config alone."""
    if model is None:
        return False
    from attn_demos.adapters.loading import load_config
    from attn_demos.tasks.registry import resolve

    return bool(getattr(load_config(resolve(model)), "is_encoder_decoder", False))


# ---------------------------------------------------------------- drawing


def _maps(model: str, stack: _Stack, layer, head, head_view: bool, output_text=None, labels=None, overlay=None) -> AttentionMaps:
    """Check, embed and draw one stack; `overlay(matrix (Tq, Tk)) -> fragment` adds an image overlay."""
    from attn_demos.tasks.registry import display_name

    weights = stack.shown  # (L, H, Tq, Tk)
    layers, heads = weights.shape[:2]
    layer, head = _choice(layer, head, layers, heads)
    if stack.library is None:
        worst, measure, max_abs_err = float(stack.output_errors.max()), OUTPUT, None
    else:
        worst = max_abs_err = max_abs_difference(stack.library, stack.recomputed)
        measure = LIBRARY
    badge = check_badge(worst, measure) + f" (all {layers} layers × {heads} heads)"
    embedded, note = _embedded_choices(weights.shape, layer, head)
    maps = {}
    for chosen in embedded:
        view = stack.view(*chosen)
        fragment = heatmap_html(view.matrix, view.query_labels, view.key_labels, view.title)
        children = {"overlay": _values_of(overlay(view.matrix))} if overlay else {}
        maps[chosen] = (fragment, f"this map: {view.check_badge}", children)
    parts = [] if overlay is None else [overlay(stack.view(layer, head).matrix)]
    parts.append(head_grid_html(weights, shown=None if head == MEAN else (layer, head),
                                title=f"all {layers} layers × {heads} heads (click one to show it)"))
    if head_view:
        cross = stack.key_pieces if stack.key_pieces != stack.query_pieces else None
        parts.append(head_view_html(weights, stack.query_pieces, cross, title="head view: hover a token for its lines",
                                    layer=layer, max_bytes=HEAD_VIEW_BYTES))
    panel = panel_html(maps, [str(i) for i in range(layers)], heads, (layer, head), parts, note)
    name = display_name(model)
    summary = _summary(name, stack, output_text, labels)
    fragment = _output_html(summary, badge, panel)
    return AttentionMaps(
        model=name, kind=stack.title, weights=weights, recomputed=stack.recomputed,
        tokens=display_tokens(stack.query_pieces), key_tokens=display_tokens(stack.key_pieces),
        max_abs_err=max_abs_err, verified=worst <= CHECK_TOLERANCE, badge=badge,
        output_text=output_text, labels=labels, html=fragment,
    )


def _choice(layer, head, layers: int, heads: int) -> tuple[int, int | str]:
    """The (layer, head) drawn first, checked: layer a number, head a number or "mean"."""
    layer = parse_index(layer, "layer must be a layer number")
    if not 0 <= layer < layers:
        raise BadInputError(f"layer {layer} does not exist: the model has layers 0–{layers - 1}")
    if isinstance(head, str) and head.strip() == MEAN:
        return layer, MEAN
    if isinstance(head, str) and head.strip() in FUSIONS:
        raise BadInputError(f"head must be a head number or {MEAN!r} here")
    head = parse_index(head, f"head must be a head number or {MEAN!r}")
    if not 0 <= head < heads:
        raise BadInputError(f"head {head} does not exist: each layer has heads 0–{heads - 1}")
    return layer, head


def _embedded_choices(shape: tuple, layer: int, head) -> tuple[list, str]:
    """Which (layer, head) maps the output carries, and a note saying so: every layer's when they
    fit MAX_EMBEDDED_VALUES, else the chosen layer's, else the chosen map alone."""
    layers, heads, tq, tk = shape
    per_layer = (MEAN, *range(heads))
    if layers * len(per_layer) * tq * tk <= MAX_EMBEDDED_VALUES:
        choices = [(each, h) for each in range(layers) for h in per_layer]
        return choices, "Every layer and head is in this output: Layer, Head and the grid redraw here, without Python."
    if len(per_layer) * tq * tk <= MAX_EMBEDDED_VALUES:
        return [(layer, h) for h in per_layer], (
            f"This input is long: only layer {layer}'s heads are in this output; call show(..., layer=N) for another layer."
        )
    return [(layer, head)], (
        f"This input is long: only layer {layer}, head {head} is in this output; call show(..., layer=N, head=M) for another."
    )


def _values_of(overlay_fragment: str) -> dict:
    """The part of an overlay's payload that changes with the map: its values and their maximum."""
    payload = read_payload(overlay_fragment)
    return {"v": payload["v"], "vmax": payload["vmax"]}


def _summary(name: str, stack: _Stack, output_text, labels) -> str:
    """One or two lines above the views: the model, what is shown, the output, the notices."""
    lines = [f"<b>{html.escape(name)}</b> · {html.escape(stack.title)}"]
    if output_text is not None:
        lines.append(f"output: “{html.escape(output_text)}”")
    if labels:
        lines.append("top-5: " + ", ".join(f"{html.escape(label)} {probability:.1%}" for label, probability in labels))
    lines += [f"ℹ️ {html.escape(notice)}" for notice in stack.notices]
    return "".join(f"<div>{line}</div>" for line in lines)


def _output_html(summary: str, badge: str, panel: str) -> str:
    """One self-contained fragment: style, summary, badge, the panel and the views' script."""
    needs_script = (
        '<div class="attn-nb-needs-script" style="font-size: 12px; opacity: 0.8;">The views are drawn by a script: '
        "run the cell (or trust the notebook) to see them.</div>"
    )
    hide_note = "document.querySelectorAll('.attn-nb-needs-script').forEach(function (n) { n.style.display = 'none'; });"
    return (
        f'<div class="attn-notebook"><style>\n{INTERACTIVE_CSS}{NOTEBOOK_CSS}</style>'
        f'<div class="attn-nb-summary" style="font-size: 13px;">{summary}</div>'
        f'<div class="attn-nb-badge" style="font-size: 13px; margin: 4px 0;">{html.escape(badge)}</div>'
        f"{panel}{needs_script}<script>\n{INTERACTIVE_JS}\n{hide_note}</script></div>"
    )


def _in_notebook() -> bool:
    """Whether this runs in a notebook's kernel (Jupyter, VS Code, Colab), where HTML is displayed."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


__all__ = ["AttentionMaps", "attention_maps", "show"]
