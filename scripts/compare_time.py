#!/usr/bin/env python
"""How long `compare` takes on a decoder-only model against one plain forward pass of it.

Builds a random-weight GPT-2-small-size checkpoint (12 layers × 768, 12 heads) offline, feeds it
one text of --tokens tokens, and prints the median seconds of `compare` (the CLI's job,
tasks.comparison.compare_model, default options unless --generate) and of one eager forward pass
without attention output, and their ratio.

    python scripts/compare_time.py                 # compare's default: one verified forward pass
    python scripts/compare_time.py --generate      # also greedy and 4-beam generation, 20 new tokens
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

from attn_demos.adapters.loading import load_model  # noqa: E402
from attn_demos.adapters.random_checkpoints import BASE_WORDS, CAUSAL_IDS, build_checkpoint  # noqa: E402
from attn_demos.tasks.comparison import CompareOptions, compare_model  # noqa: E402

SMALL = dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024)  # GPT-2 small's shape


def seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generate", action="store_true", help="ask compare for generation (4 beams, 20 new tokens)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    words = (BASE_WORDS * (args.tokens // len(BASE_WORDS) + 1))[: args.tokens - 1]  # + <s> = --tokens
    text = " ".join(words)
    with tempfile.TemporaryDirectory() as folder:
        config = transformers.GPT2Config(vocab_size=len(BASE_WORDS) + 8, **SMALL, **CAUSAL_IDS)  # GPT-2's own init
        source = str(build_checkpoint("gpt2", Path(folder) / "gpt2", config=config))
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        tokenizer.model_max_length = SMALL["n_positions"]  # the word-level tokenizer's 128 would cut the text
        tokenizer.save_pretrained(source)
        loaded = load_model(source)
        inputs = loaded.preprocessor([text], return_tensors="pt")
        assert inputs["input_ids"].shape[1] == args.tokens, inputs["input_ids"].shape
        with torch.no_grad():
            forward = seconds(lambda: loaded.model(**inputs), args.repeats)
        options = CompareOptions(device="cpu", **(dict(num_beams=4, max_new_tokens=20) if args.generate else {}))
        report = compare_model(source, [text], options=options)
        assert report.ok, report.max_abs_err
        compare = seconds(lambda: compare_model(source, [text], options=options), args.repeats)
    kinds = ", ".join(report.kinds())
    print(f"{args.tokens} tokens; compare checks: {kinds}")
    print(f"one forward pass {forward:.2f} s; compare {compare:.2f} s (includes loading); ratio {compare / forward:.1f}")


if __name__ == "__main__":
    main()
