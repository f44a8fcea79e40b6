"""End-to-end task latencies and browser payloads, for scripts/bench.py.

Each task is timed as the app runs it: the task function (model, live recomputation) plus the
panel's drawing and exports. Generation length is fixed (min_new_tokens = max_new_tokens) so the
work does not depend on what random weights happen to emit. Payloads are measured at 512 tokens:
the JSON a view sends (HTML, Markdown, numbers; images travel as separate PNG files, whose bytes
are reported beside it).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import time

import numpy as np
from PIL import Image

LATENCY_GOALS_S = {"translate": 1.0, "answer": 0.5, "classify_image": 0.7, "summarize": 8.0}
TAB_RATIO_GOAL = 1.3  # a tab's click ÷ the plain model call it wraps (issue 9)
PAYLOAD_GOAL_MB = 2.0
ENV = {
    "translate": "ATTN_DEMOS_TRANSLATE_MODEL",
    "answer": "ATTN_DEMOS_ANSWER_MODEL",
    "summarize": "ATTN_DEMOS_SUMMARIZE_MODEL",
    "classify_image": "ATTN_DEMOS_CLASSIFY_IMAGE_MODEL",
    "explore": "ATTN_DEMOS_EXPLORE_MODEL",
}


def words_for(loaded, count: int, seed: int = 0) -> str:
    """`count` ordinary whole words of the model's tokenizer: one token each (word-level vocabularies)."""
    vocabulary = [w for w in loaded.preprocessor.get_vocab() if w.isalpha() and w.isascii()]
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(sorted(vocabulary), size=count))


def p50(fn, repeats: int) -> float:
    fn()  # warm-up: first-call costs (allocations, lazy imports) are not what a user waits for twice
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def task_metrics(models: dict, quick: bool, metric, at_most, interleaved=None) -> list:
    """Latency (p50) of each task end to end, and payload size at 512 tokens (bench.py's `metric`
    makes the rows, `at_most` the goals)."""
    from attn_demos.tasks.registry import get_model
    from attn_demos.tasks.seq2seq import run_seq2seq
    from attn_demos.ui import explorer as explorer_panel
    from attn_demos.ui import images as images_panel
    from attn_demos.ui import qa as qa_panel
    from attn_demos.ui import seq2seq as seq2seq_panel

    for task, family in (("translate", "marian"), ("answer", "distilbert"), ("summarize", "bart"),
                         ("classify_image", "vit"), ("explore", "minilm")):
        os.environ[ENV[task]] = models[family].source
    repeats = 2 if quick else 5
    sizes = (
        {"translate": (12, 4), "answer": 16, "summarize": (12, 4), "payload": 16}
        if quick
        else {"translate": (20, 20), "answer": 384, "summarize": (400, 60), "payload": 512}
    )
    rows = []

    def seq2seq(task: str, source_words: int, new_tokens: int):
        loaded = get_model(task)
        text = words_for(loaded, source_words - 1)  # + </s>

        def run():
            result = run_seq2seq(loaded, text, 4, new_tokens, min_new_tokens=new_tokens)
            return seq2seq_panel.redraw(result, "mean", "mean", False)

        return run

    def answer(total_tokens: int):
        loaded = get_model("answer")
        question = words_for(loaded, 8, seed=1)
        context = words_for(loaded, total_tokens - 8 - 3, seed=2)  # [CLS] q [SEP] c [SEP]
        return lambda: qa_panel.answer(question, context, "mean", "mean", "answer")

    side = models["vit"].config.image_size
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8))
    cases = {
        "translate": seq2seq("translate", *sizes["translate"]),
        "answer": answer(sizes["answer"]),
        "summarize": seq2seq("summarize", *sizes["summarize"]),
        "classify_image": lambda: images_panel.classify_image(image, "mean", "mean"),
    }
    for task, run in cases.items():
        outputs = run()
        assert "⚠️" not in str(outputs.get("status", "")), outputs.get("status")
        rows.append(
            metric(f"latency_p50_{task}", p50(run, repeats), "s", at_most(LATENCY_GOALS_S[task]), sizes=str(sizes.get(task)))
        )

    tokens = sizes["payload"]
    explore_text = words_for(get_model("explore"), tokens - 2)
    payload_cases = {
        "explore": lambda: explorer_panel.explore(explore_text, 0, "mean", False),
        "translate": seq2seq("translate", tokens, 8),
        "answer": answer(tokens),
        "summarize": seq2seq("summarize", tokens, 8),
    }
    for view, run in payload_cases.items():
        outputs = run()
        rows.append(
            metric(f"payload_json_{view}_{tokens}_tokens", json_bytes(outputs) / 1e6, "MB", at_most(PAYLOAD_GOAL_MB),
                   png_mb=round(png_bytes(outputs) / 1e6, 3))
        )
    if interleaved is not None:
        rows += tab_ratio_metrics(quick, metric, at_most, interleaved, image)
    return rows


def tab_ratio_metrics(quick: bool, metric, at_most, interleaved, image) -> list:
    """Each tab's run end to end as the page gets it (the model with attentions, the from-scratch
    check, every interactive view; no PNG) ÷ the plain model call it wraps with the same settings
    (forward, or generate with the same beams and length), timed interleaved in this process."""
    import torch

    from attn_demos.tasks.inputs import tokenize_text
    from attn_demos.tasks.registry import get_model
    from attn_demos.tasks.seq2seq import summarization_prefix
    from attn_demos.ui import explorer, images, qa, summarization, translation

    repeats = 2 if quick else 5
    words = {"explore": 16, "answer": 16, "translate": 8, "summarize": 16} if quick else \
        {"explore": 128, "answer": 128, "translate": 20, "summarize": 200}
    beams, translate_tokens, summary_tokens = 4, 64, 80  # the tabs' defaults (tasks/seq2seq.py)

    def plain(loaded, **inputs):
        def run():
            with torch.no_grad():
                return loaded.model(**inputs)
        return run

    def plain_generate(loaded, inputs, new_tokens):
        def run():
            with torch.no_grad():
                return loaded.model.generate(**inputs, num_beams=beams, max_new_tokens=new_tokens, do_sample=False)
        return run

    cases = {}
    loaded = get_model("explore")
    text = words_for(loaded, words["explore"], seed=3)
    inputs, _, _ = tokenize_text(loaded, text)
    cases["explore"] = (lambda: explorer.explore(text, 0, "mean", False), plain(loaded, **inputs))
    loaded = get_model("answer")
    question, context = words_for(loaded, 8, seed=1), words_for(loaded, words["answer"], seed=2)
    encoded = dict(loaded.preprocessor(question, context, return_tensors="pt", truncation="only_second", max_length=384))
    cases["answer"] = (lambda: qa.answer(question, context, "mean", "mean", "answer"), plain(loaded, **encoded))
    loaded = get_model("classify_image")
    pixels = dict(loaded.preprocessor(images=image, return_tensors="pt"))
    cases["classify_image"] = (lambda: images.classify_image(image, "mean", "mean"), plain(loaded, **pixels))
    loaded = get_model("translate")
    source = words_for(loaded, words["translate"], seed=4)
    inputs, _, _ = tokenize_text(loaded, source)
    cases["translate"] = (
        lambda: translation.translate(source, "mean", "mean", False, beams), plain_generate(loaded, dict(inputs), translate_tokens)
    )
    loaded = get_model("summarize")
    article = words_for(loaded, words["summarize"], seed=5)
    inputs, _, _ = tokenize_text(loaded, summarization_prefix(loaded) + article)
    cases["summarize"] = (
        lambda: summarization.summarize(article, "mean", "mean", False, beams), plain_generate(loaded, dict(inputs), summary_tokens)
    )
    rows = []
    for tab, (run_tab, run_model) in cases.items():
        assert "⚠️" not in str(run_tab().get("status") or ""), tab
        result = interleaved(run_tab, run_model, repeats)
        rows.append(metric(f"tab_over_model_ratio/{tab}", result["ratio"], "×", at_most(TAB_RATIO_GOAL),
                           words=words.get(tab), **result))
    return rows
