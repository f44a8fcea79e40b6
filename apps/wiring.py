"""Small Gradio glue shared by the tabs: turn panel dicts into component updates."""

from __future__ import annotations

import functools

import gradio as gr

from attn_demos.render.panels.common import Choices, run_safely, user_models_allowed
from attn_demos.tasks.registry import model_status

RESULT_TTL_SECONDS = 900  # a visitor's last result (kept for re-drawing) is dropped after 15 minutes


def handler(function, outputs: tuple[str, ...]):
    """A Gradio handler: panel function -> tuple in `outputs` order; choice lists become dropdown updates."""
    safe = run_safely(function, outputs)

    @functools.wraps(function)  # API clients see the panel function's parameter names
    def wrapped(*args):
        values = tuple(_dropdown(v) if isinstance(v, Choices) else v for v in safe(*args))
        return values[0] if len(values) == 1 else values  # Gradio takes one output bare

    return wrapped


def _dropdown(choices: Choices):
    return gr.Dropdown(choices=choices.options, value=choices.selected)


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
