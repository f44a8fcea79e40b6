"""Start the combined app on 127.0.0.1 with every tab pointed at a local checkpoint, for the API,
load and browser tests."""

from __future__ import annotations

import importlib
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

APPS = Path(__file__).resolve().parents[1] / "apps"
APP_MODULES = ("app", "wiring", "seq2seq_tab", "basics_app", "explorer_app", "translation_app", "qa_app",
               "summarization_app", "image_app")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_environment(checkpoints: dict) -> dict[str, str]:
    """Explorer keeps its embedded MiniLM default; the other tabs use tiny random checkpoints."""
    return {
        "ATTN_DEMOS_TRANSLATE_MODEL": str(checkpoints["marian"]),
        "ATTN_DEMOS_ANSWER_MODEL": str(checkpoints["distilbert"]),
        "ATTN_DEMOS_SUMMARIZE_MODEL": str(checkpoints["bart"]),
        "ATTN_DEMOS_CLASSIFY_IMAGE_MODEL": str(checkpoints["vit"]),
    }


def import_app(environment: dict[str, str]):
    """A freshly built apps/app.py under `environment` (the tabs read their models at build time)."""
    os.environ.update(environment)
    for name in APP_MODULES:
        sys.modules.pop(name, None)
    if str(APPS) not in sys.path:
        sys.path.insert(0, str(APPS))
    return importlib.import_module("app")


@contextmanager
def running_app(environment: dict[str, str]):
    """Yield (app module, base URL) of the combined app listening on 127.0.0.1."""
    saved = {k: os.environ.get(k) for k in environment}
    app = import_app(environment)
    port = free_port()
    app.launch(host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield app, f"http://127.0.0.1:{port}/"
    finally:
        app.demo.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
