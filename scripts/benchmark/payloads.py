"""What a view sends to the browser at 512 tokens: the JSON of its outputs (HTML, Markdown,
numbers), and beside it the bytes of the PNGs that travel as separate files."""

from __future__ import annotations

import io
import json

from PIL import Image

from benchmark import clicks
from benchmark.models import special_tokens, words_for
from benchmark.report import Metric, at_most, metric
from benchmark.sizes import Sizes
from benchmark.tabs import explore_pair, point_tabs_at, seq2seq_pair

PAYLOAD_GOAL_MB = 2.0
NEW_TOKENS = 8


def json_bytes(values: dict) -> int:
    """Bytes of the JSON-serialisable outputs (images are sent as files, counted separately)."""
    kept = {k: v for k, v in values.items() if isinstance(v, (str, dict, list, int, float))}
    return len(json.dumps(kept, default=str).encode())


def png_bytes(values: dict) -> int:
    total = 0
    for value in values.values():
        if isinstance(value, Image.Image):
            buffer = io.BytesIO()
            value.save(buffer, format="PNG")
            total += buffer.tell()
    return total


def payloads(models: dict, sizes: Sizes) -> list[Metric]:
    from attn_demos.tasks.qa import answer
    from attn_demos.tasks.registry import get_model

    point_tabs_at(models)
    tokens = sizes.payload_tokens
    question = words_for(get_model("answer"), 8, seed=1)
    context = words_for(get_model("answer"), tokens - 8 - special_tokens(get_model("answer"), pair=True), seed=2)

    def answer_view():
        result = answer(question, context, max_tokens=tokens)
        assert len(result.tokens) == tokens, f"answer: the model saw {len(result.tokens)} tokens"
        return clicks.draw_answer(result)

    views = {
        "explore": explore_pair(tokens)[0],
        "translate": seq2seq_pair("translate", tokens, NEW_TOKENS)[0],
        "answer": answer_view,
        "summarize": seq2seq_pair("summarize", tokens, NEW_TOKENS)[0],
    }
    rows = []
    for view, run in views.items():
        outputs = run()
        rows.append(
            metric(
                f"payload_json_{view}_{tokens}_tokens",
                json_bytes(outputs) / 1e6,
                "MB",
                at_most(PAYLOAD_GOAL_MB),
                png_mb=round(png_bytes(outputs) / 1e6, 3),
            )
        )
    return rows
