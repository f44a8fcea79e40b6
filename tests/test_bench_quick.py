"""scripts/bench.py --quick runs end to end and reports every metric with a finite value; rows of
families attn-demos does not support yet are listed as skipped, never as numbers."""

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
    "sdpa_verify_ratio/minilm",
    "sdpa_attention_share/minilm",
    "sdpa_attention_share/vit",
    "core_attention_vs_sdpa",
    "tab_ratio/translate",
    "tab_ratio/answer",
    "tab_ratio/summarize",
    "tab_ratio/classify_image",
    "tab_ratio/explore",
    "latency_p50_answer",
    "concurrent_two_translations_one_thread_each_ratio",
    "payload_json_explore_16_tokens",
    "payload_json_answer_16_tokens",
    "flow_row_seconds/random_vit_size",
    "flow_row_seconds/minilm_real",
    "flow_speedup_vs_scipy/random_vit_size",
    "flow_speedup_vs_scipy/minilm_real",
    "flow_speedup_vs_scipy/minilm_real_long",
    "flow_speedup_vs_networkx",
}
DECODER_ONLY = {"llama": "HuggingFaceTB/SmolLM2-135M", "qwen2": "Qwen/Qwen2.5-0.5B"}


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
    # Each decoder-only family either has its rows or is named, once, as skipped with the reason.
    skipped = {row["name"]: row["reason"] for row in report["skipped"]}
    for family, model_id in DECODER_ONLY.items():
        rows = {f"forward_capture_ratio/{family}", f"generate_capture_ratio/{family}/greedy"}
        if f"{family} rows" in skipped:
            assert model_id in skipped[f"{family} rows"] and "not supported" in skipped[f"{family} rows"]
            assert not rows & set(values), f"{family} is skipped but has numbers"
        else:
            assert rows <= set(values), f"{family}: neither rows nor a reason"
    # A share of the forward is a fraction (time inside the fused kernel over the whole pass).
    assert all(0 < values[f"sdpa_attention_share/{name}"] < 1 for name in ("minilm", "distilbert", "vit"))
    # The flow comparison agrees with scipy's integer solve to its resolution.
    details = {m["name"]: m["details"] for m in report["metrics"]}
    assert details["flow_speedup_vs_scipy/minilm_real"]["max_abs_difference"] < 1e-6
    # The table printed for a person names every metric too.
    for name in EXPECTED:
        assert name in done.stdout


def test_bench_runs_only_the_sections_asked_for(tmp_path):
    out = tmp_path / "tmp.json"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    script = str(ROOT / "scripts" / "bench.py")
    done = subprocess.run(
        [sys.executable, script, "--quick", "--sections", "core_attention", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = {m["name"] for m in json.loads(out.read_text())["metrics"]}
    assert "core_attention_vs_sdpa" in names and not any(n.startswith("tab_ratio/") for n in names)
    wrong = subprocess.run(
        [sys.executable, script, "--quick", "--sections", "nonsense"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert wrong.returncode == 2 and "unknown section(s) nonsense" in wrong.stderr
