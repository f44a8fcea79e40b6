"""Each tab's click end to end (task function + panel function) ÷ the plain model call it wraps,
with the same settings (sdpa, no attention): transformers 5 has no translation, summarization or
QA pipelines, so the plain call is what a user writes: tokenizer or processor, then forward or
generate(). Generation length is fixed (min_new_tokens = max_new_tokens) so the work does not
depend on what random weights emit. Every click and every plain call checks that the model saw
the length the row names."""

from __future__ import annotations

import dataclasses
import os
import threading

import numpy as np
import torch
from PIL import Image

from benchmark import clicks
from benchmark.models import special_tokens, words_for
from benchmark.report import Metric, at_most, metric
from benchmark.sizes import Sizes
from benchmark.timing import as_sdpa, interleaved, torch_threads

TAB_RATIO_GOAL = 1.3
BEAMS = 4
FAMILY_OF_TAB = {
    "translate": "marian",
    "answer": "distilbert",
    "summarize": "bart",
    "classify_image": "vit",
    "explore": "minilm",
}


def point_tabs_at(models: dict) -> None:
    """Each tab's task loads the benchmark's checkpoint (the settings' <task>_model, for the rest of the run)."""
    from attn_demos import settings

    chosen = {f"{tab}_model": models[family].source for tab, family in FAMILY_OF_TAB.items()}
    settings.use(dataclasses.replace(settings.current(), **chosen))


def tab_ratios(models: dict, sizes: Sizes) -> list[Metric]:
    point_tabs_at(models)
    pairs = {
        "translate": seq2seq_pair("translate", *sizes.tabs["translate"]),
        "answer": answer_pair(sizes.tabs["answer"]),
        "summarize": seq2seq_pair("summarize", *sizes.tabs["summarize"]),
        "classify_image": image_pair(),
        "explore": explore_pair(sizes.text_tokens["minilm"]),
    }
    rows = []
    for tab, (click, plain, size) in pairs.items():
        result = interleaved(click, plain, sizes.tab_repeats)
        rows.append(metric(f"tab_ratio/{tab}", result["ratio"], "×", at_most(TAB_RATIO_GOAL), **size, **result))
        rows.append(metric(f"latency_p50_{tab}", result["candidate_s"], "s", None, **size))
    return rows


def seq2seq_pair(tab: str, source_tokens: int, new_tokens: int):
    """Translation or Summarization: run_seq2seq + the panel ÷ tokenizer + generate()."""
    from attn_demos.tasks.registry import get_model
    from attn_demos.tasks.seq2seq import run_seq2seq

    loaded = get_model(tab)
    text = words_for(loaded, source_tokens - special_tokens(loaded))  # + </s> (BART: <s> … </s>)
    size = {"source_tokens": source_tokens, "new_tokens": new_tokens, "beams": BEAMS}

    def click():
        result = run_seq2seq(loaded, text, BEAMS, new_tokens, min_new_tokens=new_tokens, task=tab)
        assert len(result.source_tokens) == source_tokens, f"{tab}: the model saw {len(result.source_tokens)} tokens"
        assert len(result.target_tokens) == new_tokens, f"{tab}: {len(result.target_tokens)} tokens generated"
        outputs = clicks.draw_seq2seq(result)
        assert "⚠️" not in str(outputs.get("status", "")), outputs.get("status")
        return outputs

    fixed = dict(num_beams=BEAMS, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)

    def plain():
        batch = loaded.preprocessor([text], return_tensors="pt", truncation=True)
        assert batch["input_ids"].shape[1] == source_tokens
        batch.pop("token_type_ids", None)
        sequences = loaded.model.generate(**batch, **fixed)  # (1, 1+T)
        assert sequences.shape[1] == 1 + new_tokens
        return loaded.preprocessor.decode(sequences[0], skip_special_tokens=True)

    return click, as_sdpa(loaded.model, plain), size


def answer_pair(total_tokens: int):
    """Question answering: the task's answer() + the panel ÷ tokenizer + forward + best span."""
    from attn_demos.tasks.qa import answer
    from attn_demos.tasks.registry import get_model

    loaded = get_model("answer")
    question = words_for(loaded, 8, seed=1)
    context = words_for(loaded, total_tokens - 8 - special_tokens(loaded, pair=True), seed=2)  # [CLS] q [SEP] c [SEP]

    def click():
        result = answer(question, context)
        assert len(result.tokens) == total_tokens, f"answer: the model saw {len(result.tokens)} tokens"
        return clicks.draw_answer(result)

    def plain():
        batch = loaded.preprocessor(
            [question], [context], return_tensors="pt", truncation="only_second", max_length=total_tokens
        )
        assert batch["input_ids"].shape[1] == total_tokens
        batch.pop("token_type_ids", None)  # DistilBERT has no segment embeddings
        out = loaded.model(**batch)
        start, end = int(out.start_logits.argmax()), int(out.end_logits.argmax())
        return loaded.preprocessor.decode(batch["input_ids"][0][start : end + 1])

    return click, as_sdpa(loaded.model, plain), {"tokens": total_tokens}


def explore_pair(tokens: int):
    """Explorer: explore() + the tab's views ÷ tokenizer + plain sdpa forward."""
    from attn_demos.tasks.registry import get_model

    loaded = get_model("explore")
    text = words_for(loaded, tokens - special_tokens(loaded))

    def click():
        outputs = clicks.explore(text)
        seen = len(outputs["state"].tokens)
        assert seen == tokens, f"explore: the model saw {seen} tokens"
        return outputs

    def plain():
        batch = loaded.preprocessor([text], return_tensors="pt", truncation=True)
        assert batch["input_ids"].shape[1] == tokens
        return loaded.model(**batch).last_hidden_state  # (1, T, D)

    return click, as_sdpa(loaded.model, plain), {"tokens": tokens}


def test_image(side: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8))


def image_pair():
    """Image patches: classify_image() + the panel ÷ processor + forward + top 5."""
    from attn_demos.tasks.images import classify_image
    from attn_demos.tasks.registry import get_model

    loaded = get_model("classify_image")
    side = loaded.config.image_size
    patches = 1 + (side // loaded.config.patch_size) ** 2
    image = test_image(side)

    def click():
        result = classify_image(image)
        assert result.shown.shape[-1] == patches, f"image: the model saw {result.shown.shape[-1]} positions"
        return clicks.draw_image(result)

    def plain():
        pixels = loaded.preprocessor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
        assert pixels.shape[-1] == side
        logits = loaded.model(pixel_values=pixels).logits  # (1, classes)
        return torch.softmax(logits, -1).topk(min(5, logits.shape[-1]))

    return click, as_sdpa(loaded.model, plain), {"image_px": side, "positions": patches}


def concurrent_clicks(models: dict, sizes: Sizes) -> list[Metric]:
    """Two translation clicks at once (as the queue runs them), each request on one torch thread
    ÷ each on the process's default (2). Measured 0.96–1.02 in full runs: not a lever worth
    keeping in the tasks layer, so the switch lives here only."""
    point_tabs_at(models)
    click, _, size = seq2seq_pair("translate", *sizes.tabs["translate"])

    def two_at_once(threads_each: int | None):
        def request():
            if threads_each is None:
                click()
            else:
                with torch_threads(threads_each):
                    click()

        def run():
            workers = [threading.Thread(target=request) for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()

        return run

    result = interleaved(two_at_once(1), two_at_once(None), sizes.tab_repeats)
    note = f"default: {torch.get_num_threads()} threads per request; {os.cpu_count()} cores"
    return [
        metric(
            "concurrent_two_translations_one_thread_each_ratio", result["ratio"], "×", None, note=note, **size, **result
        )
    ]
