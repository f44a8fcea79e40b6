"""Pieces every panel shares: status lines, exports into a per-process temporary folder."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from attn_demos.errors import AttnDemosError, BadInputError
from attn_demos.render.export import export_json, export_png
from attn_demos.render.payload import compact_matrix
from attn_demos.tasks.views import AttentionView

_export_dir: Path | None = None


def export_folder() -> Path:
    """A temporary folder for this process's exports, removed when the process exits."""
    global _export_dir
    if _export_dir is None:
        _export_dir = Path(tempfile.mkdtemp(prefix="attn-demos-exports-"))
        atexit.register(shutil.rmtree, _export_dir, ignore_errors=True)
    return _export_dir


EXPORT_MAX_AGE = 3600  # seconds; Gradio serves its own copy, so older files are only clutter


def export_view(view: AttentionView, picture, extra: dict | None = None) -> tuple[str, str]:
    """Write the picture (PNG) and exactly the numbers on screen (JSON); return both paths."""
    folder = export_folder()
    remove_old_exports(folder)
    payload = {**view.to_payload(), **(extra or {})}
    return str(export_png(picture, folder)), str(export_json(payload, folder))


def remove_old_exports(folder: Path, max_age: float = EXPORT_MAX_AGE) -> None:
    """Delete exports older than max_age, so a long-running app does not fill its disk."""
    cutoff = time.time() - max_age
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:  # removed by a concurrent request
            pass


def numbers(view: AttentionView) -> dict:
    """A small JSON payload of the view for the browser and API clients (large matrices are top-k)."""
    return {
        "title": view.title,
        "query_tokens": view.query_labels,
        "key_tokens": view.key_labels,
        "matrix": compact_matrix(view.matrix),
        "recomputed_max_abs_err": view.max_abs_err,
    }


def user_models_allowed() -> bool:
    """Visitors may name a model only when the app was started with --allow-user-models."""
    return os.environ.get("ATTN_DEMOS_ALLOW_USER_MODELS", "0") == "1"


def user_model(value: str | None) -> str | None:
    """The model a request names, if the app allows it; None means the configured model."""
    value = (value or "").strip()
    if not value:
        return None
    if not user_models_allowed():
        raise BadInputError("this app serves its configured models only (start it with --allow-user-models)")
    return value


def status_text(notices: list[str], model: str | None = None) -> str:
    lines = [f"ℹ️ {n}" for n in notices]
    if model:
        lines.append(f"Model: `{model}`")
    return "\n\n".join(lines)


def error_text(error: Exception) -> str:
    """A message for the tab: ours are already one clear line; anything else is summarised."""
    if isinstance(error, AttnDemosError):
        return f"⚠️ {error}"
    if isinstance(error, ValueError):
        return f"⚠️ {error}"
    return f"⚠️ Something went wrong ({type(error).__name__}): {str(error)[:300]}"


@dataclass
class Choices:
    """Options for a dropdown after a run, and the one the run actually drew."""

    options: list
    selected: object


def layer_choices(num_layers: int, selected="mean") -> Choices:
    options = ["mean"] + list(range(num_layers))
    return Choices(options, _as_option(selected, options))


def head_choices_for(options: list, selected="mean") -> Choices:
    return Choices(options, _as_option(selected, options))


def _as_option(value, options: list):
    """A dropdown value ("3" or 3) as it appears in options; the first option if it is not there."""
    for option in options:
        if str(option) == str(value):
            return option
    return options[0]


def run_safely(function, outputs: tuple[str, ...]):
    """Wrap a panel function so that any failure becomes a message in the 'status' output.

    The wrapped function returns a dict keyed by names in `outputs`; the wrapper returns a tuple in
    that order (missing names are None), which is what a Gradio event handler returns.
    """

    @functools.wraps(function)
    def wrapped(*args):
        try:
            values = function(*args)
        except Exception as error:  # the tab shows it; the app stays up
            values = {"status": error_text(error)}
        return tuple(values.get(name) for name in outputs)

    return wrapped
