"""Question answering tab: the answer span and score, the context highlighted by the attention
from the answer (or the question), and the full heatmap."""

from __future__ import annotations

from attn_demos.render.heatmap import heatmap_image
from attn_demos.render.panels.common import (
    export_view,
    head_choices_for,
    layer_choices,
    numbers,
    status_text,
    user_model,
)
from attn_demos.render.tokens import highlight_html
from attn_demos.tasks.qa import QAResult, answer
from attn_demos.tasks.views import parse_head

REDRAW_OUTPUTS = ("status", "badge", "highlight", "heatmap", "png", "json", "numbers")
RUN_OUTPUTS = ("state", "answer", "layers", "heads") + REDRAW_OUTPUTS


def run(question: str, context: str, layer, head, attend_from: str, model: str | None = None) -> dict:
    result = answer(question, context, source=user_model(model))
    return {
        **redraw(result, layer, head, attend_from),
        "state": result,
        "answer": answer_text(result),
        "layers": layer_choices(result.num_layers, layer),
        "heads": head_choices_for(result.head_options(), head),
    }


def answer_text(result: QAResult) -> str:
    if not result.answer:
        return "No answer found in the context."
    return f"**{result.answer}** (score {result.score:.1%})"


def redraw(result: QAResult | None, layer, head, attend_from: str = "answer") -> dict:
    if result is None:
        return {"status": "Type a question and a context, then press Answer."}
    head = parse_head(head)
    layer = 0 if head == "rollout" else (layer if layer == "mean" else int(layer))
    attend_from = "question" if attend_from == "question" else "answer"
    context_tokens, scores = result.context_scores(attend_from, layer, head)  # (C,)
    highlight = highlight_html(context_tokens, scores, title=f"context, as the {attend_from} attends to it")
    view = result.view(layer, head)
    picture = heatmap_image(view.matrix, view.query_labels, view.key_labels, view.title)
    extra = {"model": result.model, "answer": result.answer, "score": result.score, "context_scores": scores.tolist()}
    png, json_path = export_view(view, picture, extra)
    return {
        "status": status_text(view.notices, result.model),
        "badge": view.check_badge,
        "highlight": highlight,
        "heatmap": picture,
        "png": png,
        "json": json_path,
        "numbers": {**numbers(view), "context_tokens": context_tokens, "context_scores": scores.round(4).tolist()},
    }
