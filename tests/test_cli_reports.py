"""`compare --out` when the process is killed (kill -9) part way: no earlier run's report is left
looking like this run's, report.json is never beside an earlier run's errors.png, and the verdict
is printed only once the files exist. The kill is the process sending itself SIGKILL at a chosen
step, so the test does not depend on timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EARLIER = {  # an earlier run's files, as a reader would take them: complete and matching
    "report.json": json.dumps({"model": "earlier", "ok": True, "results": []}),
    "report.csv": "kind,layer,head,max_abs_err,within_tolerance\nencoder,0,0,1.000e-08,True\n",
    "errors.png": "an earlier run's picture",
}
KILL_WHILE = {  # step -> (module, attribute) that sends SIGKILL instead of running
    "comparing": ("attn_demos.tasks.comparison", "_compare_batch"),
    "drawing errors.png": ("matplotlib.figure", "Figure.savefig"),
}


def compare_killed_while(step: str, argv: list[str]) -> subprocess.CompletedProcess:
    module, attribute = KILL_WHILE[step]
    owner, _, name = attribute.rpartition(".")
    program = (
        "import importlib, os, signal, sys\n"
        f"target = importlib.import_module({module!r})\n"
        f"target = getattr(target, {owner!r}) if {owner!r} else target\n"
        f"setattr(target, {name!r}, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))\n"
        "from attn_demos import cli\n"
        f"sys.exit(cli.main({argv!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )


def earlier_run(folder: Path) -> Path:
    folder.mkdir()
    for name, text in EARLIER.items():
        (folder / name).write_text(text)
    return folder


def earlier_files_left(folder: Path) -> set[str]:
    return {name for name, text in EARLIER.items() if (folder / name).exists() and (folder / name).read_text(errors="replace") == text}


def test_killed_while_comparing_leaves_no_earlier_report(checkpoints, tmp_path):
    out = earlier_run(tmp_path / "out")
    done = compare_killed_while("comparing", ["compare", "--model", str(checkpoints["bert"]), "--out", str(out)])
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert earlier_files_left(out) == set()
    assert not (out / "report.json").exists()


def test_killed_while_drawing_leaves_no_report_json_beside_an_earlier_picture(checkpoints, tmp_path):
    out = earlier_run(tmp_path / "out")
    argv = ["compare", "--model", str(checkpoints["bert"]), "--out", str(out)]
    done = compare_killed_while("drawing errors.png", argv)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert earlier_files_left(out) == set()
    assert not (out / "report.json").exists()  # written last: its presence means the others are this run's
    assert "MATCH" not in done.stdout  # the verdict comes after the files

    from attn_demos import cli

    assert cli.main(argv) == 0  # the next run cleans what the killed one left
    assert {p.name for p in out.iterdir()} == {"report.json", "report.csv", "errors.png"}
    assert json.loads((out / "report.json").read_text())["ok"] is True
