"""Basics tab: the tutorial's steps as tables (torch beside numpy), the weights as a heatmap, and
every number in a download."""

from __future__ import annotations

import uuid

import gradio as gr
import numpy as np

from attn_demos.render.export import export_json
from attn_demos.render.interactive import heatmap_html
from attn_demos.render.interactive.table import paired_table_html
from attn_demos.tasks.basics import SEED_KEY, SEED_QUERY, SEED_VALUE, run_basics
from attn_demos.ui import wiring
from attn_demos.ui.common import export_folder, remove_old_exports

OUTPUTS = ("status", "steps", "heatmap", "numbers")
EXPORT_OUTPUTS = ("status", "download")
AGREEMENT = 1e-12  # torch and numpy in float64 agree to rounding
PREVIEW_SIZE = 8  # the page's JSON shows an 8 × 8 corner of each step; the download holds every number
DECIMALS = 6


def basics(query: str, key: str, value: str) -> dict:
    result = run_basics(query, key, value)
    d_k = result.query.shape[-1]
    queries = [f"q{i}" for i in range(result.weights.shape[0])]
    keys = [f"k{j}" for j in range(result.weights.shape[1])]
    dims = [f"v{j}" for j in range(result.output.shape[1])]
    steps = "".join(
        [
            paired_table_html(result.scores, result.numpy_scores, row_labels=queries, column_labels=keys,
                              title=f"1. Scores q·kᵀ / √{d_k}", decimals=DECIMALS),
            paired_table_html(result.weights, result.numpy_weights, row_labels=queries, column_labels=keys,
                              title="2. Weights softmax(scores), each row sums to 1", decimals=DECIMALS),
            paired_table_html(result.output, result.numpy_output, row_labels=queries, column_labels=dims,
                              title="3. Output weights · v", decimals=DECIMALS),
        ]
    )
    mark = "✓ agree" if result.max_abs_diff < AGREEMENT else "✗ disagree"
    return {
        "status": f"torch and numpy {mark}: max |Δ| {result.max_abs_diff:.1e}",
        "steps": steps,
        "heatmap": heatmap_html(result.weights, queries, keys, "attention weights", decimals=DECIMALS),
        "numbers": preview(result),
    }


def preview(result) -> dict:
    """What the page's JSON shows: the shapes and an 8 × 8 corner of each step (torch); every
    number of both cores is in the download."""
    corner = (slice(0, PREVIEW_SIZE), slice(0, PREVIEW_SIZE))
    return {
        "shapes": {name: list(getattr(result, name).shape) for name in ("query", "key", "value", "weights", "output")},
        "d_k": int(result.query.shape[-1]),
        "scores_corner": np.round(result.scores[corner], DECIMALS).tolist(),
        "weights_corner": np.round(result.weights[corner], DECIMALS).tolist(),
        "output_corner": np.round(result.output[corner], DECIMALS).tolist(),
        "torch_vs_numpy_max_abs_diff": result.max_abs_diff,
        "full_numbers": "press Download for a JSON file with every number of both cores",
    }


def download(query: str, key: str, value: str) -> dict:
    """Every number of both cores' steps, as basics.json."""
    result = run_basics(query, key, value)
    root = export_folder()
    remove_old_exports(root)
    path = export_json(result.every_number(), root / uuid.uuid4().hex, "basics")  # a folder per request
    return {"status": "basics.json: every number of both cores (scores, weights, output)",
            "download": str(path)}


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
        "steps": gr.HTML(seed["steps"], label="steps", elem_id="basics-steps"),
        "heatmap": gr.HTML(seed["heatmap"], label="weights", elem_id="basics-heatmap"),
    }
    with gr.Accordion("Every number", open=False, elem_id="basics-numbers-accordion"):
        out["numbers"] = gr.JSON(seed["numbers"], label="numbers", elem_id="basics-numbers")
        download_button = gr.Button("Download every number (JSON)", elem_id="basics-download-run")
        out["download"] = gr.File(label="basics.json", elem_id="basics-download")
    wiring.run_on_click_and_enter(
        button, [query, key, value], True, wiring.handler(basics, OUTPUTS), [query, key, value],
        wiring.outputs_for(out, OUTPUTS), api_name="basics",
    )
    download_button.click(
        wiring.handler(download, EXPORT_OUTPUTS), [query, key, value], wiring.outputs_for(out, EXPORT_OUTPUTS),
        api_name="basics_download",
    )
