#!/usr/bin/env python
"""Speed and memory of attn-demos against what a user runs without it, measured in one run.

Every ratio compares two things timed in the same process, interleaved (A B, B A, …), as the
median of several repeats, on 2 torch threads. The full run builds random-weight checkpoints
with the real models' sizes, limits and generation settings (scripts/benchmark/real_size_configs.py)
in a child process, plus the embedded all-MiniLM-L6-v2; --quick uses tiny checkpoints so that it
ends within a minute or two. The pieces live in scripts/benchmark/ (timing, models, capture, tabs
and clicks, flow, payloads, report).

    python scripts/bench.py                 # full run, writes bench.json
    python scripts/bench.py --quick --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: the benchmark package

import torch  # noqa: E402
from benchmark import capture, flow, payloads, report, tabs  # noqa: E402
from benchmark.models import build_checkpoints, build_only, load_models, touch_every_weight  # noqa: E402
from benchmark.sizes import FULL, QUICK  # noqa: E402

THREADS = 2
SECTIONS = {
    "forward_capture": capture.forward_capture,
    "generation": capture.generation,
    "extraction": capture.extraction,
    "tab_ratios": tabs.tab_ratios,
    "concurrent_clicks": tabs.concurrent_clicks,
    "payloads": payloads.payloads,
    "attention_flow": flow.attention_flow,
    "core_attention": capture.core_attention,  # takes sizes only
}


def peak_memory() -> report.Metric:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return report.metric(
        "peak_rss_after_loading_mb", peak_kib / 1024, "MB", note="all models loaded, one forward pass each"
    )


def load_average_line(when: str) -> tuple[float, float, float]:
    load = os.getloadavg()
    print(f"load average {when}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)", file=sys.stderr)
    return load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and sizes (a minute or two)")
    parser.add_argument("--out", default="bench.json", help="where to write the JSON (default bench.json)")
    parser.add_argument("--checkpoints", help="folder to keep (and reuse) the built checkpoints in")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})")
    parser.add_argument(
        "--sections", help=f"comma-separated sections to run (default all): {', '.join(SECTIONS)}",
    )
    parser.add_argument("--build-only", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = args.sections.split(",") if args.sections else list(SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.build_only:
        build_only(Path(args.build_only), args.quick)
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sizes = QUICK if args.quick else FULL
    report.set_quick(args.quick)
    started = time.time()
    load_at_start = load_average_line("at start")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.checkpoints or scratch)
        models = load_models(build_checkpoints(folder, args.quick, Path(__file__).resolve()), args.quick)
        touch_every_weight(models)
        metrics = [peak_memory()]
        for section in (SECTIONS[name] for name in chosen if name != "core_attention"):
            metrics += section(models, sizes)
            print(f"[{time.time() - started:6.1f} s] {section.__module__}.{section.__name__} done", file=sys.stderr)
        if "core_attention" in chosen:
            metrics += capture.core_attention(sizes)
    for m in metrics:
        if not math.isfinite(m.value):
            print(f"warning: {m.name} is not finite", file=sys.stderr)
    load_at_end = load_average_line("at end")
    report.print_table(metrics)
    print(f"load average: {load_at_start[0]:.2f} at start, {load_at_end[0]:.2f} at end ({os.cpu_count()} cores)")
    result = {
        "quick": args.quick,
        "threads": args.threads,
        "malloc_environment": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},  # glibc reads these
        "torch": torch.__version__,
        "seconds": round(time.time() - started, 1),
        "load_average_start": load_at_start,
        "load_average_end": load_at_end,
        "peak_rss_end_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "metrics": [asdict(m) for m in metrics],
        "skipped": report.SKIPPED,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
