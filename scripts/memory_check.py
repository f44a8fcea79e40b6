"""Peak extra memory of a view of a long input, next to the size of one layer's maps.

    python scripts/memory_check.py [--tokens 1024] [--heads 12] [--layers 4]

A random-weight BERT (sdpa) and one input of `--tokens` tokens. Each way of getting a view runs
in a fresh process, after two plain forward passes; its peak extra memory is the growth of the
process's peak resident set (ru_maxrss) over those passes. torch's CPU allocations are invisible
to tracemalloc, and ru_maxrss never falls, hence one process per way. Each process runs with
glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_): otherwise glibc raises it after the first
large free and keeps later freed buffers in its heap, so the resident set would count memory the
allocator retains rather than memory in use. Ways:
  verify   forward_with_verification, every layer checked and dropped (no view)
  layer    reduce_attention with KeepLayer: one layer's maps (a heatmap view); only that layer's
           weights are built
  rollout  reduce_attention with Rollout: every layer's weights built in turn, fused and dropped
  stream   rollout + the last layer's maps, fed one layer at a time
  keep     forward_with_verification keeping every layer's weights (what a full view costs)
  click    one Explorer click (attn_demos.ui.explorer.explore: eager pass, views drawn) on the
           embedded MiniLM, `--tokens` capped at its 512; the tab keeps every layer's maps twice
           (the library's and the core's), so its floor is 2 × layers; reported against those too
On CUDA the same is measured with torch.cuda.max_memory_allocated by scripts/gpu_bench.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WAYS = ("verify", "layer", "rollout", "stream", "keep", "click")
FLOAT32_BYTES = 4
MMAP_THRESHOLD = 65536  # bytes: buffers from this size on are mapped and unmapped by glibc, never kept


def measure_click(tokens: int) -> dict:
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import torch

    from attn_demos.ui.explorer import explore

    torch.set_num_threads(1)
    explore("a first click loads the model", 0, "mean", False, "")
    explore("a first click loads the model", 0, "mean", False, "")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = explore("the " * (tokens - 2), 0, "mean", False, "")["state"]  # [CLS] … [SEP]
    extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    layers, heads, length = result.recomputed.shape[:3]
    row = report_row("click", length, heads, layers, extra)
    kept = 2 * layers * heads * length * length * FLOAT32_BYTES  # the library's stack and the core's
    return {**row, "peak_extra_over_kept_maps": round(extra / kept, 2), "max_abs_err": result.max_abs_err}


def report_row(way: str, tokens: int, heads: int, layers: int, extra: int) -> dict:
    """One way's line: its peak extra bytes, also in units of one layer's maps (float32)."""
    one_layer = heads * tokens * tokens * FLOAT32_BYTES
    return {
        "way": way,
        "tokens": tokens,
        "heads": heads,
        "layers": layers,
        "one_layer_maps_mb": round(one_layer / 2**20, 1),
        "peak_extra_mb": round(extra / 2**20, 1),
        "peak_extra_over_one_layer": round(extra / one_layer, 2),
    }


def measure(way: str, tokens: int, heads: int, layers: int) -> dict:
    if way == "click":
        return measure_click(tokens)
    import torch
    import transformers

    from attn_demos.adapters.extract import Side
    from attn_demos.adapters.families import family_for
    from attn_demos.adapters.loading import LoadedModel
    from attn_demos.adapters.reduce import KeepLayer, Rollout, reduce_attention
    from attn_demos.adapters.verify import forward_with_verification

    torch.set_num_threads(1)
    config = transformers.BertConfig(
        hidden_size=8 * heads, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=16 * heads,
        max_position_embeddings=tokens, vocab_size=1000,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    loaded = LoadedModel("random bert", model, None, family_for("bert"), "BertModel", "sdpa")
    ids = torch.randint(5, 1000, (1, tokens))  # (1, T)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    side = Side([[str(i) for i in range(tokens)]], torch.ones(1, tokens, dtype=torch.bool))
    for _ in range(2):
        with torch.no_grad():
            model(**inputs)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux reports KiB)
    if way == "verify":
        result = forward_with_verification(loaded, inputs, side, keep_weights=False)
    elif way in ("layer", "rollout", "stream"):
        rollout, last = Rollout("encoder"), KeepLayer("encoder", layers - 1)
        reducers = {"layer": [last], "rollout": [rollout], "stream": [rollout, last]}[way]
        result = reduce_attention(loaded, inputs, side, reducers)
        assert all(r.joint.shape == (1, tokens, tokens) for r in reducers if r is rollout)
        assert all(r.weights is not None for r in reducers if r is last)
    else:
        result = forward_with_verification(loaded, inputs, side)
    extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    worst = max(float(e.max()) for e in result.errors.values())
    return {**report_row(way, tokens, heads, layers, extra), "worst_relative_output_error": worst}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--way", choices=WAYS, help="measure one way in this process")
    args = parser.parse_args(argv)
    if args.way:
        print(json.dumps(measure(args.way, args.tokens, args.heads, args.layers)))
        return 0
    for way in WAYS:
        command = [sys.executable, __file__, "--way", way, "--tokens", str(args.tokens), "--heads", str(args.heads),
                   "--layers", str(args.layers)]
        environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
        print(subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout.strip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
