#!/usr/bin/env python
"""What attention costs with the peers and with attn-demos' verified paths, in the same rounds.

For each model and length, every round runs (order alternated each round): the plain sdpa
forward; the eager forward with output_attentions=True (BertViz's path); TransformerLens'
run_with_cache(hook_pattern) (the optional `bench` extra; skipped with the reason when it is not
installed); attn-demos' sdpa verification without weights, with the last layer's weights kept
and with every layer's kept; and the eager capture + recompute the tabs run on the CPU. Each ratio
is the median over rounds of the path's time ÷ the plain forward's in that round, printed with
its goal (issue 24) and, with --memory, each path's peak extra memory. The floor (1 + the share
of the plain forward spent in scaled_dot_product_attention) is measured in the same rounds.

Models: GPT-2 small and Llama-3.2-1B sizes with random weights (built in memory), the embedded
all-MiniLM-L6-v2 (real weights); --quick: tiny stand-ins of the same families, 16 tokens.

    python scripts/bench_peers.py                                  # gpt2 512, llama 512, minilm 128 + 512
    python scripts/bench_peers.py --models gpt2 --lengths 128,512,2048
    python scripts/bench_peers.py --models gpt2,llama --layers 4,8 --lengths 512
    python scripts/bench_peers.py --quick --out /tmp/peers.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: the benchmark package

import torch  # noqa: E402
from benchmark import peers, report  # noqa: E402
from benchmark.peer_models import MODELS, build  # noqa: E402
from benchmark.peers import measure, transformer_lens_bridge  # noqa: E402
from benchmark.timing import as_sdpa, seconds  # noqa: E402

THREADS = 2
ROUNDS = 5
DEFAULT_LENGTHS = {"gpt2": (512,), "llama": (512,), "minilm": (128, 512)}
MINILM_MAX_TOKENS = 512  # its position table
QUICK_TOKENS = 16
KEPT_GB = 3.0  # a case whose every layer's weights (one copy, float32) exceed this is skipped
CASE_SECONDS = 300.0  # a case's rounds are cut to fit this (at least MIN_ROUNDS), or it is skipped
MIN_ROUNDS = 3
KEPT_SHOWN_MB = 10  # memory a path keeps after its call is shown from this much on
PATHS_COST = 8 * 1.5  # a round runs 7–8 paths of up to ~1.7 plain forwards: its time ≈ this × plain


def numbers(text: str | None) -> list[int] | None:
    return None if text is None else [int(part) for part in text.split(",")]


def load_average_line(when: str) -> list[float]:
    load = os.getloadavg()
    print(f"load average {when}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)", file=sys.stderr)
    return list(load)


def bound(peer, length: int, rounds: int, args) -> tuple[int, str | None]:
    """(rounds that fit the case's budgets, None), or (0, why the case is skipped)."""
    kept_gb = peer.layers * peer.heads * length * length * 4 / 1e9
    if kept_gb > args.kept_gb:
        return 0, f"every layer's weights take {kept_gb:.1f} GB (> --kept-gb {args.kept_gb:g}), once per capturing path"
    ids = torch.zeros(1, length, dtype=torch.long)  # (1, T)
    plain = as_sdpa(peer.model, lambda: peer.model(input_ids=ids))
    plain_s = min(seconds(plain) for _ in range(2))  # the first call also warms up
    fitting = int(args.case_seconds // (PATHS_COST * plain_s)) - 1 - int(args.memory)  # less warm-up and memory
    if fitting < MIN_ROUNDS:
        return 0, (
            f"one plain forward takes {plain_s:.1f} s here: {MIN_ROUNDS} rounds would take about "
            f"{(MIN_ROUNDS + 1 + args.memory) * PATHS_COST * plain_s:.0f} s (> --case-seconds {args.case_seconds:g})"
        )
    return min(rounds, fitting), None


def run_cases(args) -> list[report.Metric]:
    metrics = []
    for name in args.models:
        lengths = args.lengths or ([QUICK_TOKENS] if args.quick else DEFAULT_LENGTHS[name])
        if name == "minilm":
            lengths = [t for t in lengths if t <= MINILM_MAX_TOKENS] or skip_all(name, lengths)
        layer_counts = [None] if name == "minilm" or not args.layers else args.layers
        for layers in layer_counts:
            peer = build(name, args.quick, layers, max(lengths))
            bridge, reason = transformer_lens_bridge(peer)
            if reason:
                report.skipped("transformer_lens rows", reason)
            for length in lengths:
                rounds, why = bound(peer, length, args.rounds, args)
                if why:
                    report.skipped(f"peers/{name}/{peer.layers}L/{length}", why)
                    continue
                started = time.time()
                metrics += measure(peer, length, rounds, args.memory, bridge, reason)
                print(f"{name} ({peer.layers} layers) at {length} tokens: {rounds} rounds, "
                      f"{time.time() - started:.0f} s", file=sys.stderr)
            del peer, bridge
            gc.collect()
    return metrics


def skip_all(name: str, lengths: list[int]) -> list[int]:
    report.skipped(f"peers/{name}", f"lengths {lengths} exceed its {MINILM_MAX_TOKENS} positions")
    return []


def markdown(result: dict) -> str:
    """The rows as a markdown table, with the date, machine, command and load."""
    lines = [
        f"- date: {result['date']}; machine: {result['machine']}; torch {result['torch']}, transformers "
        f"{result['transformers']}, transformer-lens {result['transformer_lens'] or 'not installed'}; "
        f"{result['threads']} torch threads, {result['clock']} clock",
        f"- command: `{result['command']}` ({result['seconds']:.0f} s)",
        f"- load average (1 min) {result['load_average_start'][0]:.2f} before, {result['load_average_end'][0]:.2f} after "
        f"({os.cpu_count()} cores)",
        "",
        "| model | layers | tokens | path | ratio (min–max) | goal | met | peak extra MB (kept after the call) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    metrics = result["metrics"]
    memory = {m["name"].rsplit("/", 1)[0]: m for m in metrics if m["name"].endswith("/peak_extra_mb")}
    for m in metrics:
        d, name = m["details"], m["name"]
        if name.endswith("/peak_extra_mb"):
            continue
        case = f"| {d['model']} | {d['layers']} | {d['tokens']} |"
        if name.endswith("/plain_seconds"):
            mb = memory.get(name.rsplit("/", 1)[0] + "/plain")
            lines.append(f"{case} plain sdpa forward | 1 ({m['value']:.3f} s) | — | — | {_mb(mb)} |")
        elif name.endswith("/floor"):
            lines.append(f"{case} floor: 1 + attention's share of the plain forward | {m['value']:.3f} | — | — | — |")
        else:
            spread = f"{m['value']:.2f} ({d['ratio_min']:.2f}–{d['ratio_max']:.2f})"
            met = "—" if m["met"] is None else ("yes" if m["met"] else "**no**")
            extra = ""
            if "ratio_to_plain_with_mlm_head" in d:
                extra = f"; ÷ plain with the MLM head: {d['ratio_to_plain_with_mlm_head']:.2f}"
            if "passed" in d:
                extra += f"; largest error {d['largest_error']:.1e} ({'passed' if d['passed'] else 'FAILED'})"
            lines.append(f"{case} {d['label']}{extra} | {spread} | {m['goal'] or '—'} | {met} | {_mb(memory.get(name))} |")
    for row in result["skipped"]:
        lines.append(f"\nskipped {row['name']}: {row['reason']}")
    return "\n".join(lines) + "\n"


def _mb(row) -> str:
    if row is None:
        return "—"
    kept = row["details"]["kept_after_call_mb"]
    return f"{row['value']:.0f}" + (f" ({kept:.0f} kept)" if kept >= KEPT_SHOWN_MB else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"tiny models, {QUICK_TOKENS} tokens, 2 rounds")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default {','.join(MODELS)})")
    parser.add_argument("--lengths", help="comma-separated token counts for every model (default: gpt2 512, "
                        "llama 512, minilm 128,512; MiniLM stops at 512)")
    parser.add_argument("--layers", help="comma-separated layer counts for the random models (default: their own)")
    parser.add_argument("--rounds", type=int, help=f"timed rounds per case (default {ROUNDS}; --quick 2)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory pass")
    parser.add_argument("--kept-gb", type=float, default=KEPT_GB, help=f"skip a case whose every layer's weights "
                        f"exceed this many GB (default {KEPT_GB:g})")
    parser.add_argument("--case-seconds", type=float, default=CASE_SECONDS, help="fit a case's rounds in about this "
                        f"many seconds, at least {MIN_ROUNDS}, else skip it (default {CASE_SECONDS:g})")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})")
    parser.add_argument("--clock", choices=sorted(peers.CLOCKS), default="wall", help="wall: seconds that pass "
                        "(default); cpu: this process's CPU time, steadier on a machine others share (with "
                        "--threads 1: with more, threads waiting for each other count too)")
    parser.add_argument("--out", default="bench_peers.json", help="where to write the JSON")
    parser.add_argument("--markdown", help="also write the table as markdown here")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    args.lengths, args.layers = numbers(args.lengths), numbers(args.layers)
    args.rounds = args.rounds or (2 if args.quick else ROUNDS)

    torch.set_num_threads(args.threads)
    peers.clock = peers.CLOCKS[args.clock]
    report.set_quick(args.quick)
    started = time.time()
    load_at_start = load_average_line("at start")
    metrics = run_cases(args)
    load_at_end = load_average_line("at end")
    report.print_table(metrics)
    print(f"load average: {load_at_start[0]:.2f} at start, {load_at_end[0]:.2f} at end ({os.cpu_count()} cores)")
    result = {
        "quick": args.quick,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "command": "python scripts/bench_peers.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "threads": args.threads,
        "clock": args.clock,
        "malloc_environment": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "transformer_lens": _version("transformer-lens"),
        "seconds": round(time.time() - started, 1),
        "load_average_start": load_at_start,
        "load_average_end": load_at_end,
        "peak_rss_end_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "metrics": [asdict(m) for m in metrics],
        "skipped": report.SKIPPED,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))
    return 0


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
