"""Start the combined app on 127.0.0.1 with every tab pointed at a local checkpoint, for the API,
load, security, bad-input and browser tests (conftest's `app_server` fixture uses it)."""

from __future__ import annotations

import dataclasses
import socket
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_settings(checkpoints: dict, **changes) -> dict:
    """Settings (as replace() arguments): Explorer keeps its embedded MiniLM default; the other tabs
    use tiny random checkpoints; visitors may not name models; `changes` on top."""
    return {
        "translate_model": str(checkpoints["marian"]),
        "answer_model": str(checkpoints["distilbert"]),
        "summarize_model": str(checkpoints["bart"]),
        "classify_image_model": str(checkpoints["vit"]),
        "generate_model": str(checkpoints["llama"]),
        "allow_user_models": False,
        **changes,
    }


@contextmanager
def running_app(changes: dict):
    """Yield (blocks, base URL) of the combined app, built and listening under the settings in
    force with `changes` (the tabs read their models when built and on each request)."""
    from attn_demos import settings
    from attn_demos.ui.app import build, launch

    with settings.using(dataclasses.replace(settings.current(), **changes)):
        demo = build()
        port = free_port()
        launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield demo, f"http://127.0.0.1:{port}/"
        finally:
            demo.close()
