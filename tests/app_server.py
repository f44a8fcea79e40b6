"""Start the combined app on 127.0.0.1 with every tab pointed at a local checkpoint, for the API,
load, security, bad-input and browser tests (conftest's `app_server` fixture uses it)."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager


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
        "ATTN_DEMOS_GENERATE_MODEL": str(checkpoints["llama"]),
    }


@contextmanager
def environment(values: dict[str, str | None]):
    """Set (or, for None, remove) environment variables; restore them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def running_app(values: dict[str, str | None]):
    """Yield (blocks, base URL) of the combined app, built and listening under `values` (the tabs
    read their models when built and on each request)."""
    from attn_demos.ui.app import build, launch

    with environment(values):
        demo = build()
        port = free_port()
        launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield demo, f"http://127.0.0.1:{port}/"
        finally:
            demo.close()
