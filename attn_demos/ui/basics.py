"""Basics tab: the tutorial's steps as tables, the weights as a heatmap, torch beside numpy."""

from __future__ import annotations

import gradio as gr
import numpy as np

from attn_demos.render.heatmap import heatmap_image
from attn_demos.tasks.basics import SEED_KEY, SEED_QUERY, SEED_VALUE, run_basics
from attn_demos.ui import wiring

OUTPUTS = ("status", "steps", "heatmap", "numbers")
AGREEMENT = 1e-12  # torch and numpy in float64 agree to rounding


def basics(query: str, key: str, value: str) -> dict:
    result = run_basics(query, key, value)
    d_k = result.query.shape[-1]
    steps = "\n\n".join(
        [
            f"**1. Scores** q·kᵀ / √{d_k}\n\n" + _side_by_side(result.scores, result.numpy_scores),
            "**2. Weights** softmax(scores), each row sums to 1\n\n" + _side_by_side(result.weights, result.numpy_weights),
            "**3. Output** weights · v\n\n" + _side_by_side(result.output, result.numpy_output),
        ]
    )
    queries = [f"q{i}" for i in range(result.weights.shape[0])]
    keys = [f"k{j}" for j in range(result.weights.shape[1])]
    mark = "✓ agree" if result.max_abs_diff < AGREEMENT else "✗ disagree"
    return {
        "status": f"torch and numpy {mark}: max |Δ| {result.max_abs_diff:.1e}",
        "steps": steps,
        "heatmap": heatmap_image(result.weights, queries, keys, "attention weights"),
        "numbers": result.to_dict(),
    }


def _side_by_side(torch_values: np.ndarray, numpy_values: np.ndarray) -> str:
    """A Markdown table: one row per query, torch and numpy columns."""
    header = "| row | torch | numpy |\n|---|---|---|"
    rows = [f"| {i} | {_fmt(a)} | {_fmt(b)} |" for i, (a, b) in enumerate(zip(torch_values, numpy_values))]
    return "\n".join([header, *rows])


def _fmt(row: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.6f}" for x in row) + "]"


def build() -> None:
    gr.Markdown("`softmax(q·kᵀ/√d_k)·v`, step by step, computed by the torch core and the numpy core.")
    with gr.Row():
        query = gr.Textbox(label="query q", value=str(SEED_QUERY), elem_id="basics-query")
        key = gr.Textbox(label="key k", value=str(SEED_KEY), elem_id="basics-key")
        value = gr.Textbox(label="value v", value=str(SEED_VALUE), elem_id="basics-value")
    button = gr.Button("Compute", variant="primary", elem_id="basics-run")
    seed = basics(str(SEED_QUERY), str(SEED_KEY), str(SEED_VALUE))  # shown before the first click
    out = {
        "status": gr.Markdown(seed["status"], label="status", show_label=False, elem_id="basics-status"),
        "steps": gr.Markdown(seed["steps"], label="steps", show_label=False, elem_id="basics-steps"),
        "heatmap": gr.Image(seed["heatmap"], label="weights", type="pil", elem_id="basics-heatmap"),
    }
    with gr.Accordion("Numbers (JSON)", open=False):
        out["numbers"] = gr.JSON(seed["numbers"], label="numbers", elem_id="basics-numbers")
    wiring.run_on_click_and_enter(
        button, [query, key, value], True, wiring.handler(basics, OUTPUTS), [query, key, value],
        wiring.outputs_for(out, OUTPUTS), api_name="basics",
    )
