"""Summarization tab: which article tokens each summary token attended to, along the winning beam."""

from __future__ import annotations

from attn_demos.tasks.examples import load_examples
from attn_demos.tasks.seq2seq import summarize as summarize_text
from attn_demos.ui import seq2seq
from attn_demos.ui.common import user_model

TAB = "summarize"
RUN_OUTPUTS = seq2seq.RUN_OUTPUTS
REDRAW_OUTPUTS = seq2seq.REDRAW_OUTPUTS
EXPORT_OUTPUTS = seq2seq.EXPORT_OUTPUTS
redraw = seq2seq.redraw


def summarize(article: str, layer, head, words: bool, num_beams: int = 4, model: str | None = None) -> dict:
    """Summarize `article`, then draw the first summary token's cross-attention."""
    named = user_model(model)
    result = summarize_text(article, source=named, num_beams=int(num_beams))
    return seq2seq.run_result(result, {"text": article, "model": named}, layer, head, words)


def export(result, inputs, layer, head, words: bool, target=None) -> dict:
    return seq2seq.export(TAB, result, inputs, layer, head, words, target)


def build() -> None:
    examples = [row["article"] for row in load_examples(TAB)]
    seq2seq.build(TAB, summarize, "Article", examples[0], examples, "Summarize")
