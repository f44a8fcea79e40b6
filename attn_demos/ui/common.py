"""What every tab's handlers share, without Gradio: status and error lines, dropdown choices, the
default of a blank control, the short preview of the numbers, and exports written on request."""

from __future__ import annotations

import atexit
import html
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attn_demos import settings
from attn_demos.core.pooling import display_tokens
from attn_demos.errors import AttnDemosError, BadInputError
from attn_demos.render.export import export_json, export_png, owner_file, private_folder, remove_older_than
from attn_demos.tasks.registry import display_name
from attn_demos.tasks.views import SelectedMap, parse_head, parse_index

LAYER_DEFAULT = "mean"
HEAD_DEFAULT = "mean"
PREVIEW_SIZE = 8  # the page's JSON shows the first 8 tokens and an 8 × 8 corner: never the full matrix
PREVIEW_DECIMALS = 4
EXPORT_MAX_AGE = 600  # seconds an export is kept (served from where it was written: one copy)
EXPORT_PREFIX = "attn-demos-exports-"
MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")  # backslash-escaped; <, > and & become entities

_export_dir: Path | None = None


# ---------------------------------------------------------------- messages


def status_text(notices: list[str], model: str | None = None) -> str:
    """The notices of a run, and the model's name when it is not the tab's own (a visitor's override).
    The status is Markdown: HTML in a notice or a name shows as text."""
    lines = [f"ℹ️ {html.escape(n, quote=False)}" for n in notices]
    if model:
        lines.append(f"Model: {code_span(display_name(model))}")
    return "\n\n".join(lines)


def error_text(error: Exception) -> str:
    """A message for the tab: ours are already one clear line; anything else is summarised. Markdown
    whose HTML (a value a visitor typed, echoed by a library's message) shows as text."""
    if isinstance(error, (AttnDemosError, ValueError)):
        return f"⚠️ {html.escape(str(error), quote=False)}"
    return f"⚠️ Something went wrong ({type(error).__name__}): {html.escape(str(error)[:300], quote=False)}"


def plain_markdown(text: str) -> str:
    """`text` (a visitor's, or cut from a visitor's input) as Markdown that shows it as it is: HTML
    as text, and no emphasis, link or image made of its punctuation."""
    return html.escape(MARKDOWN_PUNCTUATION.sub(r"\\\1", text), quote=False)


def code_span(text: str) -> str:
    """`text` as a Markdown code span, whatever backticks it holds (the fence is longer than any)."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# ---------------------------------------------------------------- models


def user_models_allowed() -> bool:
    """Visitors may name a model only when the app was started with --allow-user-models
    (or $ATTN_DEMOS_ALLOW_USER_MODELS=1)."""
    return settings.current().allow_user_models


def user_model(value: str | None) -> str | None:
    """The model a request names, if the app allows it; None means the configured model."""
    value = (value or "").strip()
    if not value:
        return None
    if not user_models_allowed():
        raise BadInputError("this app serves its configured models only (start it with --allow-user-models)")
    return value


# ---------------------------------------------------------------- controls


@dataclass
class Choices:
    """Options for a dropdown after a run, and the one the run actually drew."""

    options: list
    selected: object


def token_choices(tokens: list[str], selected: int = 0) -> Choices:
    """A dropdown of tokens: "index: token as a person writes it" -> the index, which keeps two
    equal labels ("the", "the") apart."""
    return Choices([(f"{i}: {label}", i) for i, label in enumerate(display_tokens(tokens))], selected)


def layer_choices(num_layers: int, selected=LAYER_DEFAULT) -> Choices:
    options = [LAYER_DEFAULT] + list(range(num_layers))
    return Choices(options, _as_option(selected, options))


def head_choices_for(options: list, selected=HEAD_DEFAULT) -> Choices:
    return Choices(options, _as_option(selected, options))


def _as_option(value, options: list):
    """A dropdown value ("3" or 3) as it appears in options; the first option if it is not there."""
    for option in options:
        if str(option) == str(value):
            return option
    return options[0]


def parse_layer(value, default=LAYER_DEFAULT) -> int | str:
    """A Layer control's value -> "mean" or an index; blank (None, "") means the tab's default."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, str) and value.strip() == LAYER_DEFAULT:
        return LAYER_DEFAULT
    return parse_index(value, "layer must be 'mean' or a layer number")


def parse_head_or_default(value, default=HEAD_DEFAULT) -> int | str:
    """A Head control's value -> a fusion name, "rollout" or an index; blank means the tab's default."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return parse_head(value)


def aggregation(layer, head) -> str:
    """How the shown matrix was made from the stack, in words (for exports)."""
    if head == "rollout":
        return "rollout over all layers (heads averaged, residual added)"
    layers = "mean over layers" if layer == LAYER_DEFAULT else "one layer"
    heads = f"{head} over heads" if isinstance(head, str) else "one head"
    return f"{layers}, {heads}"


# ---------------------------------------------------------------- numbers on the page


def numbers_preview(view: SelectedMap, size: int = PREVIEW_SIZE) -> dict:
    """What the page's JSON shows: the shape, the first tokens and a corner of the matrix; the
    full numbers are in the Export file only (a whole 344 × 344 matrix froze the page)."""
    rows, cols = view.matrix.shape
    return {
        "title": view.title,
        "shape": [rows, cols],
        "query_tokens": view.query_labels[:size],
        "key_tokens": view.key_labels[:size],
        "matrix_corner": np.round(view.matrix[:size, :size].astype(np.float64), PREVIEW_DECIMALS).tolist(),
        **view.check_fields(),
        "full_numbers": "press Export for a JSON file with every token and value",
    }


# ---------------------------------------------------------------- exports


def export_folder() -> Path:
    """A private temporary folder for this process's exports, removed when the process exits (and
    by the next process to make one, after a kill -9)."""
    global _export_dir
    if _export_dir is None:
        _export_dir = private_folder(EXPORT_PREFIX)
        atexit.register(owner_file(_export_dir).unlink, missing_ok=True)  # runs last: after the folder is gone
        atexit.register(shutil.rmtree, _export_dir, ignore_errors=True)
    return _export_dir


def export_name(tab: str, layer, head) -> str:
    """A file name that says what it holds: explore-layer3-head5, qa-mean-layers-rollout."""
    layer_part = "mean-layers" if layer == LAYER_DEFAULT else f"layer{layer}"
    if head == "rollout":
        return f"{tab}-rollout"
    head_part = f"{head}-heads" if isinstance(head, str) else f"head{head}"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{tab}-{layer_part}-{head_part}")


def export_files(name: str, picture, payload: dict) -> dict:
    """Write `name`.png and `name`.json into a new folder of their own (concurrent requests never
    share one); return {"png": path, "json": path}."""
    root = export_folder()
    remove_old_exports(root)
    folder = root / uuid.uuid4().hex
    return {"png": str(export_png(picture, folder, name)), "json": str(export_json(payload, folder, name))}


def export_payload(tab: str, model: str, layer, head, view: SelectedMap, **fields) -> dict:
    """The JSON export: what was shown and how it was chosen, then every number of the view."""
    return {
        "tab": tab,
        "model": display_name(model),
        "layer": layer,
        "head": head,
        "aggregation": aggregation(layer, head),
        **fields,
        **view.to_payload(),
    }


def remove_old_exports(folder: Path | None = None, max_age: float = EXPORT_MAX_AGE) -> None:
    """Delete exports older than max_age (0: every one), so a long-running app does not fill its disk."""
    remove_older_than(folder or export_folder(), max_age)
