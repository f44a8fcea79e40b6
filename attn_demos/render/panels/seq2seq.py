"""Translation and Summarization tabs: the output, the alignment heatmap (target × source), the
source highlighted for one chosen output token, and coverage."""

from __future__ import annotations

import numpy as np

from attn_demos.render.heatmap import heatmap_image
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
from attn_demos.tasks.seq2seq import Seq2SeqResult, summarize, translate
from attn_demos.tasks.views import parse_head

REDRAW_OUTPUTS = ("status", "badge", "heatmap", "highlight", "coverage", "png", "json", "numbers")
RUN_OUTPUTS = ("state", "output", "layers", "heads", "targets") + REDRAW_OUTPUTS


def run_translation(text: str, layer, head, words: bool, num_beams: int = 4, model: str | None = None) -> dict:
    return _run(translate(text, source=user_model(model), num_beams=int(num_beams)), layer, head, words)


def run_summary(article: str, layer, head, words: bool, num_beams: int = 4, model: str | None = None) -> dict:
    return _run(summarize(article, source=user_model(model), num_beams=int(num_beams)), layer, head, words)


def _run(result: Seq2SeqResult, layer, head, words: bool) -> dict:
    return {
        **redraw(result, layer, head, words, target=None),
        "state": result,
        "output": result.output_text,
        "layers": layer_choices(result.num_layers, layer),
        "heads": head_choices_for(result.head_options(), head),
        "targets": target_choices(result),
    }


def target_choices(result: Seq2SeqResult) -> Choices:
    """(label, index) for each output token, for a dropdown; the first is selected."""
    return Choices([(f"{i}: {token}", i) for i, token in enumerate(result.target_tokens)], 0)


def redraw(result: Seq2SeqResult | None, layer, head, words: bool, target=None) -> dict:
    """Another layer/head/target token of the same output, without running the model again."""
    if result is None:
        return {"status": "Type a text and press the button."}
    head = parse_head(head)
    layer = layer if layer == "mean" else int(layer)
    view = result.cross_view(layer, head, words)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    target = 0 if target in (None, "") else int(target)
    scores = result.source_scores(target, layer, head)  # (S,)
    chosen = result.target_tokens[target]
    highlight = highlight_html(result.source_tokens, scores, title=f"source attended by output token {target} “{chosen}”")
    coverage = highlight_html(
        result.source_tokens, result.coverage(layer, head), title="coverage: total attention each source token received"
    )
    png, json_path = export_view(view, picture, {"model": result.model, "output_text": result.output_text})
    return {
        "status": status_text(view.notices, result.model),
        "badge": view.check_badge,
        "heatmap": picture,
        "highlight": highlight,
        "coverage": coverage,
        "png": png,
        "json": json_path,
        "numbers": {**numbers(view), "coverage": np.round(result.coverage(layer, head), 4).tolist()},
    }
