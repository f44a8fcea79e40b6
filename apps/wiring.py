"""Small Gradio glue shared by the tabs: turn panel dicts into component updates."""

from __future__ import annotations

import os

import gradio as gr

from attn_demos.render.panels.common import run_safely
from attn_demos.tasks.registry import model_status

CHOICE_OUTPUTS = {"layers": "mean", "heads": "mean", "targets": 0}


def handler(function, outputs: tuple[str, ...]):
    """A Gradio handler: panel function -> tuple in `outputs` order; choice lists become dropdown updates."""
    safe = run_safely(function, outputs)

    def wrapped(*args):
        values = list(safe(*args))
        for i, name in enumerate(outputs):
            if name in CHOICE_OUTPUTS:
                values[i] = _choices(values[i], CHOICE_OUTPUTS[name])
        return tuple(values)

    wrapped.__name__ = function.__name__
    return wrapped


def _choices(choices, preferred):
    if choices is None:
        return gr.skip()
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    return gr.Dropdown(choices=choices, value=preferred if preferred in values else values[0])


def user_models_allowed() -> bool:
    """Visitors may type a model id only when the app was started with --allow-user-models."""
    return os.environ.get("ATTN_DEMOS_ALLOW_USER_MODELS", "0") == "1"


def model_box(task: str):
    """The model line of a tab: status of the configured model, and an override box if allowed."""
    ok, message = model_status(task)
    gr.Markdown(message, elem_classes=["model-status"] + ([] if ok else ["model-error"]))
    return gr.Textbox(
        label="Model (Hub id or local folder; empty = the configured one)",
        visible=user_models_allowed(),
        value="",
    )


def outputs_for(components: dict, names: tuple[str, ...]) -> list:
    return [components[name] for name in names]
