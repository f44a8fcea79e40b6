"""What Hugging Face Spaces does with this repository: install requirements.txt only (the project
itself is not installed), then run `python apps/app.py` from the repository root. The page must be
served before any model loads, and the log must not ask for a missing package."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_S = 180  # importing torch, transformers and gradio on a shared 2-core machine
POLL_S = 0.5


def _repository_files() -> list[str]:
    """The files a fresh clone holds (and this checkout's uncommitted ones), relative to the root."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, so there is no clone to copy: {listed.stderr.decode().strip()}")
    return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _page(port: int, process: subprocess.Popen) -> str | None:
    """The app's front page once it is served; None if the process ends or START_S passes first."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                return response.read().decode("utf-8", errors="replace")
        except OSError:
            time.sleep(POLL_S)
    return None


def _without_this_project(env: dict) -> dict:
    """Python that sees every installed package but not this project: `-S` (given on the command
    line) skips site's .pth files, which is where `pip install -e .` registers attn_demos, and
    PYTHONPATH gives the site-packages folders back."""
    folders = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    return {**{k: v for k, v in env.items() if k != "PYTHONPATH"}, "PYTHONPATH": os.pathsep.join(folders)}


@pytest.mark.slow
def test_spaces_app_starts_from_a_clone(tmp_path, checkpoints):
    clone = tmp_path / "clone"
    for name in _repository_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    port = _free_port()
    env = _without_this_project(os.environ) | {
        "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
        "ATTN_DEMOS_TRANSLATE_MODEL": str(checkpoints["marian"]), "ATTN_DEMOS_ANSWER_MODEL": str(checkpoints["distilbert"]),
        "ATTN_DEMOS_SUMMARIZE_MODEL": str(checkpoints["bart"]), "ATTN_DEMOS_CLASSIFY_IMAGE_MODEL": str(checkpoints["vit"]),
        "ATTN_DEMOS_GENERATE_MODEL": str(checkpoints["llama"]),
    }
    # Control: in that Python, attn_demos is importable from nowhere but the clone's root.
    probe = subprocess.run([sys.executable, "-S", "-c", "import gradio, attn_demos"], cwd=clone / "apps", env=env,
                           capture_output=True, text=True)
    assert "No module named 'attn_demos'" in probe.stderr, probe.stderr[-2000:]
    process = subprocess.Popen([sys.executable, "-S", "apps/app.py"], cwd=clone, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        page = _page(port, process)
    finally:
        process.terminate()
        log = process.communicate(timeout=60)[0]
    assert page is not None, log[-4000:]
    assert "attn-demos" in page
    assert "ModuleNotFoundError" not in log and "sacremoses" not in log


def test_the_page_builds_before_any_model_loads(monkeypatch, checkpoints, use_settings):
    """A Space serves its page while its models are still to be downloaded: build() reads configs only."""
    import transformers

    from attn_demos.adapters import loading
    from attn_demos.tasks import registry
    from attn_demos.ui import app

    def refuse(*args, **kwargs):
        raise AssertionError("building the page loaded a model or a tokenizer")

    families = {"explore": "bert", "translate": "marian", "answer": "distilbert", "summarize": "bart",
                "classify_image": "vit", "generate": "llama"}
    use_settings(**{f"{task}_model": str(checkpoints[family]) for task, family in families.items()})
    monkeypatch.setattr(registry, "load_model_cached", refuse)
    monkeypatch.setattr(loading, "load_model", refuse)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    demo = app.build()
    assert demo is not None and "Model: `marian` — random weights" in str(demo.config)


def test_the_marian_tokenizer_asks_for_no_package(checkpoints):
    """sacremoses is a requirement: MarianTokenizer warns "Recommended: pip install sacremoses." without it."""
    from transformers import AutoTokenizer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AutoTokenizer.from_pretrained(checkpoints["marian"])
    assert not [str(w.message) for w in caught if "sacremoses" in str(w.message)], (
        "sacremoses is missing: it is in requirements.txt and pyproject.toml; run scripts/setup.sh again"
    )
