"""GPU benchmark: what checking attention costs next to the model's fastest path.

    python3 scripts/gpu_bench.py [--out results.json] [--quick]

Random-weight BERT-base (batch 32 × 512 tokens) and ViT-base (batch 32 × 197 patches), and BERT-base
on one text of APP_TOKENS tokens (an app's click, bound by the host), float32 and bfloat16. For each, the median time of (interleaved rounds of CALLS_PER_ROUND calls, CUDA-synchronised):
  plain      sdpa forward, nothing captured: the baseline
  eager      eager forward with output_attentions + capture + from-scratch recomputation
             (forward_with_attention, the library's weights as reference)
  sdpa       sdpa forward verified by the output, no weights materialised (forward_with_verification,
             keep_weights=False): q, k, v recorded from the projections as they ran, and every
             layer checked by the fused Triton kernel (core/fused_check.py) where triton exists
  view       the same, plus one layer's maps for a view (reduce_attention with KeepLayer: that
             layer's weights built in torch, the others checked by the kernel)
each the median over rounds of that round's time ÷ the same round's plain forward (with the range),
the host's time to queue the plain forward (plain_host_ms: near plain_ms, the pass is host-bound),
and the peak extra GPU memory of the sdpa verification and of the view over the plain forward,
next to the size of one layer's maps (B·H·T·T float32). --quick: tiny sizes (a smoke run, also on CPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: the benchmark package

import torch  # noqa: E402
import transformers  # noqa: E402
from benchmark.real_size_configs import vit_base_patch16_224  # noqa: E402

from attn_demos.adapters import verify  # noqa: E402
from attn_demos.adapters.extract import Side, forward_with_attention, vision_side  # noqa: E402
from attn_demos.adapters.families import family_for  # noqa: E402
from attn_demos.adapters.loading import LoadedModel  # noqa: E402
from attn_demos.adapters.precision import DTYPES  # noqa: E402
from attn_demos.adapters.reduce import KeepLayer, reduce_attention  # noqa: E402
from attn_demos.adapters.verify import forward_with_verification  # noqa: E402
from attn_demos.core import fused_check  # noqa: E402

ROUNDS, WARMUP = 9, 3
CALLS_PER_ROUND = 3  # back to back in one timing: a single call's launch jitter is a few % of an 8 ms forward
BENCH_DTYPES = ("float32", "bfloat16")
APP_TOKENS = 128  # the one-text row's length: a paragraph, as typed in the Explorer


def models(quick: bool) -> dict[str, tuple]:
    """name -> (config, model class, batch, length); BertConfig's defaults are BERT-base's."""
    if quick:
        bert = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
        vit = transformers.ViTConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64, patch_size=16
        )
        return {"bert-base": (bert, transformers.BertModel, 2, 64), "vit-base": (vit, transformers.ViTModel, 2, None)}
    return {
        "bert-base": (transformers.BertConfig(), transformers.BertModel, 32, 512),
        "vit-base": (vit_base_patch16_224(), transformers.ViTModel, 32, None),
        # one text, as an app's click runs it: the pass is bound by the host's launches, not the GPU
        "bert-base, one text": (transformers.BertConfig(), transformers.BertModel, 1, APP_TOKENS),
    }


def build(config, model_class, implementation: str, dtype: str, device, state=None) -> LoadedModel:
    config = copy.deepcopy(config)
    config._attn_implementation = implementation
    torch.manual_seed(0)
    model = model_class(config).eval()
    if state is not None:
        model.load_state_dict(state)
    model.to(device=device, dtype=DTYPES[dtype])
    family = family_for(config.model_type)
    return LoadedModel(f"random {config.model_type}", model, None, family, model_class.__name__, implementation)


def inputs_for(loaded: LoadedModel, batch: int, length: int | None, device):
    generator = torch.Generator().manual_seed(0)
    if loaded.family.vision:
        size = loaded.config.image_size
        pixels = torch.randn(batch, 3, size, size, generator=generator).to(device, loaded.dtype)  # (B, 3, H, W)
        return {"pixel_values": pixels}, vision_side(loaded, batch)
    ids = torch.randint(1000, loaded.config.vocab_size, (batch, length), generator=generator)  # (B, T)
    mask = torch.ones(batch, length, dtype=torch.long)  # (B, T)
    side = Side([[f"t{i}" for i in range(length)]] * batch, mask.bool())
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}, side


def timed(run, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(CALLS_PER_ROUND):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / CALLS_PER_ROUND


def bench_one(name: str, spec, dtype: str, device, rounds: int) -> dict:
    config, model_class, batch, length = spec
    sdpa = build(config, model_class, "sdpa", dtype, device)
    eager = build(config, model_class, "eager", dtype, device, state=sdpa.model.state_dict())
    inputs, side = inputs_for(sdpa, batch, length, device)
    worst = {}

    def plain():
        with torch.no_grad():
            sdpa.model(**inputs)

    def eager_capture():
        forward_with_attention(eager, inputs, side)

    def sdpa_verify():
        result = forward_with_verification(sdpa, inputs, side, keep_weights=False)
        worst["sdpa"] = max(float(e.max()) for e in result.errors.values())

    kind = "vision" if sdpa.family.vision else "encoder"
    last = sdpa.config.num_hidden_layers - 1

    def sdpa_view():
        view = KeepLayer(kind, last)
        result = reduce_attention(sdpa, inputs, side, [view])
        worst["view"] = max(float(e.max()) for e in result.errors.values())
        assert view.weights is not None

    runs = {"plain": plain, "eager": eager_capture, "sdpa": sdpa_verify, "view": sdpa_view}
    for run in runs.values():
        for _ in range(WARMUP):
            run()
    times = {key: [] for key in runs}
    for index in range(rounds):  # interleaved, so drift hits every variant alike
        order = list(runs.items())
        if index % 2:  # every other round backwards: no variant always follows the same one (eager's churn)
            order.reverse()
        for key, run in order:
            times[key].append(timed(run, device))
    median = {key: statistics.median(values) for key, values in times.items()}
    # each round's variant ÷ that round's plain forward: the clock and the GPU's state drift between rounds
    pairs = {key: sorted(t / p for t, p in zip(times[key], times["plain"])) for key in runs if key != "plain"}
    host = statistics.median(host_time(plain, device) for _ in range(rounds))
    memory = peak_extra_memory(plain, sdpa_verify, device)
    view_memory = peak_extra_memory(plain, sdpa_view, device)
    heads = sdpa.config.num_attention_heads
    tokens = inputs["input_ids"].shape[1] if "input_ids" in inputs else len(side.tokens[0])
    one_layer = batch * heads * tokens * tokens * 4  # float32 weights of one layer, bytes
    row = {
        "model": name,
        "dtype": dtype,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": batch,
        "tokens": tokens,
        "plain_ms": round(median["plain"] * 1e3, 2),
        # the host's time to queue the plain forward: close to plain_ms, the pass is bound by the host
        # (then every µs of Python a verification adds per layer shows in its ratio). It includes any
        # wait the model makes itself: transformers checks an all-ones mask on the host (.all()), after the embeddings
        "plain_host_ms": round(host * 1e3, 2),
        "eager_capture_ratio": round(statistics.median(pairs["eager"]), 3),
        "sdpa_verify_ratio": round(statistics.median(pairs["sdpa"]), 3),
        "sdpa_view_ratio": round(statistics.median(pairs["view"]), 3),
        "pair_ratio_range": {key: [round(values[0], 3), round(values[-1], 3)] for key, values in pairs.items()},
        "sdpa_worst_relative_output_error": worst.get("sdpa"),
        "view_worst_relative_output_error": worst.get("view"),
        "fused_kernel": fused_check.fused_check_available(device, DTYPES[dtype]),
        "one_layer_maps_mb": round(one_layer / 2**20, 1),
    }
    if memory is not None:
        row["sdpa_verify_peak_extra_mb"] = round(memory / 2**20, 1)
        row["peak_extra_over_one_layer"] = round(memory / one_layer, 3)
        row["view_peak_extra_mb"] = round(view_memory / 2**20, 1)
        row["view_peak_extra_over_one_layer"] = round(view_memory / one_layer, 3)
    return row


def host_time(run, device) -> float:
    """Seconds until `run` returns, the device idle before it and not waited for after (on CUDA: the
    time to queue its kernels)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.synchronize()
    return elapsed


def peak_extra_memory(plain, verified, device) -> int | None:
    """Peak GPU memory of `verified` minus that of `plain` (bytes); None off CUDA."""
    if device.type != "cuda":
        return None
    peaks = []
    for run in (plain, verified):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated(device))
    return peaks[1] - peaks[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--heads-per-chunk", type=int, default=None,
        help="heads a view's layer is attended at once (default: as many as verify.CHUNK_BYTES hold; more is faster, needs more memory)",
    )
    parser.add_argument(
        "--kernel-config", type=int, nargs=4, metavar=("ROWS", "KEYS", "WARPS", "STAGES"),
        help="one fused kernel configuration for every length (default: fused_check.LONG_CONFIG / SHORT_CONFIG)",
    )
    parser.add_argument("--dtypes", nargs="+", choices=BENCH_DTYPES, default=list(BENCH_DTYPES))
    args = parser.parse_args(argv)
    if args.heads_per_chunk:
        verify.HEADS_PER_CHUNK = args.heads_per_chunk
    fused_check.CONFIG = tuple(args.kernel_config) if args.kernel_config else None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.quick:
        print("gpu_bench: torch sees no CUDA GPU; run with --quick for a CPU smoke run", file=sys.stderr)
        return 2
    rows = []
    for name, spec in models(args.quick).items():
        for dtype in args.dtypes:
            row = bench_one(name, spec, dtype, device, args.rounds)
            row["heads_per_chunk"] = verify.HEADS_PER_CHUNK or f"{verify.CHUNK_BYTES} bytes"
            row["kernel_config"] = fused_check.CONFIG or "by length"
            print(json.dumps(row), flush=True)
            rows.append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the models of this row are gone
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
