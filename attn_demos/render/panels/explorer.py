"""Explorer tab: a text's self-attention per layer/head, the grid of every head, fusion, rollout."""

from __future__ import annotations

from attn_demos.render.heatmap import head_grid_image, heatmap_image
from attn_demos.render.panels.common import (
    Choices,
    export_view,
    head_choices_for,
    layer_choices,
    numbers,
    status_text,
    user_model,
)
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.explorer import ExploreResult, explore
from attn_demos.tasks.views import parse_head

REDRAW_OUTPUTS = ("status", "badge", "heatmap", "received", "png", "json", "numbers")
RUN_OUTPUTS = ("state", "grid", "layers", "heads", "flow_tokens") + REDRAW_OUTPUTS
FLOW_OUTPUTS = ("status", "flow")  # errors land in the status line


def run(text: str, layer, head, words: bool, model: str | None = None) -> dict:
    """Run the model once, then draw the chosen view (the state keeps the result for re-drawing)."""
    result = explore(text, source=user_model(model))
    drawn = redraw(result, layer, head, words)
    grid = head_grid_image(result.library, title=f"all {result.num_layers} layers × {result.num_heads} heads")
    return {
        **drawn,
        "state": result,
        "grid": grid,
        "layers": layer_choices(result.num_layers, layer),
        "heads": head_choices_for(result.head_options(), head),
        "flow_tokens": Choices([(f"{i}: {t}", i) for i, t in enumerate(result.tokens)], 0),
    }


def flow(result: ExploreResult | None, token_index) -> dict:
    """Attention flow into one token, as highlighted text (seconds for long texts: on request only)."""
    if result is None:
        return {"status": "Run the model first (Show attention)."}
    index = 0 if token_index in (None, "") else int(token_index)
    scores = result.flow_scores(index)  # (T,)
    title = (
        f"attention flow into token {index} “{result.tokens[index]}” through all {result.num_layers} layers "
        f"(from maps that match the from-scratch recomputation to {result.max_abs_err:.1e})"
    )
    return {"status": status_text(result.notices, result.model), "flow": highlight_html(result.tokens, scores, title=title)}


def redraw(result: ExploreResult | None, layer, head, words: bool) -> dict:
    """Draw another layer/head of the same text without running the model again."""
    if result is None:
        return {"status": "Type a text and press Show attention."}
    head = parse_head(head)
    layer = 0 if head == "rollout" else (layer if layer == "mean" else int(layer))
    view = result.view(layer, head, words)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    png, json_path = export_view(view, picture, {"model": result.model})
    return {
        "status": status_text(view.notices, result.model),
        "badge": view.check_badge,
        "heatmap": picture,
        "received": highlight_html(view.key_labels, view.matrix.mean(axis=0), title="attention each token receives (mean over rows)"),
        "png": png,
        "json": json_path,
        "numbers": numbers(view),
    }
