"""scripts/bench_peers.py --quick runs the peers and the verified paths on tiny models and reports
every row with a finite value, its floor, and that each verified path passed its check; without
TransformerLens its rows are skipped with the reason, never shown as numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_peers.py"
PATHS = ("eager_attentions", "verify", "verify_one_layer", "verify_all_layers", "eager_recompute")
VERIFIED = ("verify", "verify_one_layer", "verify_all_layers", "eager_recompute")


def run(tmp_path, *args, pythonpath=()):
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(ROOT)]),  # this checkout's attn_demos
    }
    out = tmp_path / "peers.json"
    table = tmp_path / "peers.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--markdown", str(table), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), table.read_text(), done.stdout


def test_quick_run_reports_every_path_with_its_floor(tmp_path):
    report, table, printed = run(tmp_path)
    values = {m["name"]: m for m in report["metrics"]}
    skipped = {row["name"]: row["reason"] for row in report["skipped"]}
    peers = () if "transformer_lens rows" in skipped else ("transformer_lens",)
    for model, layers in (("gpt2", 2), ("llama", 2), ("minilm", 6)):
        case = f"peers/{model}/{layers}L/16"
        for path in (*PATHS, *peers):
            row = values[f"{case}/{path}"]
            assert math.isfinite(row["value"]) and row["value"] > 0, (path, row["value"])
            assert row["details"]["ratio_min"] <= row["value"] <= row["details"]["ratio_max"]
            assert 0 <= values[f"{case}/{path}/peak_extra_mb"]["value"] < 1e4
            assert f"{case}/{path}" in printed
        for path in VERIFIED:
            assert values[f"{case}/{path}"]["details"]["passed"], path
        assert 1 < values[f"{case}/floor"]["value"] < 2
        assert values[f"{case}/plain_seconds"]["value"] > 0
    assert report["quick"] is True and len(report["load_average_start"]) == 3
    assert "peers/minilm/6L/16/plain_with_mlm_head" in values or not peers
    for line in ("- date: ", "- command: `python scripts/bench_peers.py --quick", "- load average", "| gpt2 | 2 | 16 |"):
        assert line in table


def test_without_transformer_lens_its_rows_are_skipped_with_the_reason(tmp_path):
    blocked = tmp_path / "blocked" / "transformer_lens"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("not installed here")\n')
    report, table, _ = run(tmp_path, "--models", "gpt2", "--no-memory", pythonpath=[blocked.parent])
    names = {m["name"] for m in report["metrics"]}
    skipped = {row["name"]: row["reason"] for row in report["skipped"]}
    assert "not installed" in skipped["transformer_lens rows"] and "[bench]" in skipped["transformer_lens rows"]
    assert not any("transformer_lens" in name for name in names)
    assert "peers/gpt2/2L/16/verify_all_layers" in names
    assert "skipped transformer_lens rows" in table
