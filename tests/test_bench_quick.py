"""scripts/bench.py --quick runs end to end and reports every metric with a finite value."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {
    "peak_rss_after_loading_mb",
    "forward_capture_ratio/minilm",
    "forward_capture_ratio/distilbert",
    "forward_capture_ratio/vit",
    "generate_capture_ratio/marian/greedy",
    "generate_capture_ratio/marian/beam4",
    "generate_capture_ratio/bart/greedy",
    "generate_capture_ratio/bart/beam4",
    "generate_capture_ratio/t5/greedy",
    "generate_capture_ratio/t5/beam4",
    "extract_recompute_ratio/minilm",
    "extract_recompute_ratio/distilbert",
    "extract_recompute_ratio/vit",
    "core_attention_vs_sdpa",
    "flow_row_seconds",
    "flow_speedup_vs_networkx",
}


def test_quick_benchmark_reports_every_metric(tmp_path):
    out = tmp_path / "tmp.json"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    values = {m["name"]: m["value"] for m in report["metrics"]}
    assert set(values) >= EXPECTED, f"missing: {sorted(EXPECTED - set(values))}"
    for name, value in values.items():
        assert isinstance(value, (int, float)) and math.isfinite(value), f"{name} = {value!r}"
        assert value > 0, f"{name} = {value!r}"
    assert report["quick"] is True
    # The table printed for a person names every metric too.
    for name in EXPECTED:
        assert name in done.stdout
