"""Without a browser: the Basics tab's one torch|numpy table per step and its download, the overlay
view's numbers and legend, the panel's embedded maps, and a patch clicked as the image query."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attn_demos.render.interactive.embed import from_fixed_point, read_payload
from attn_demos.render.interactive.heatmap import heatmap_html
from attn_demos.render.interactive.overlay import ALPHA, overlay_html
from attn_demos.render.interactive.panel import panel_html
from attn_demos.render.interactive.table import paired_table_html
from attn_demos.ui import basics

SIDE = 64


def _matrix_text(rng) -> str:
    return json.dumps(rng.normal(size=(SIDE, SIDE)).round(3).tolist())


def _rows(table: str) -> list[list[str]]:
    """The cells of each data row, as a person reads them (row label first)."""
    rows = re.findall(r'<tr class="attn-paired-row">(.*?)</tr>', table)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in rows]


def test_a_paired_table_shows_each_row_once_torch_then_numpy_and_caps_big_inputs():
    first = np.arange(SIDE * SIDE, dtype=np.float64).reshape(SIDE, SIDE) / 1000  # (64, 64)
    second = first.copy()
    second[3, 40] += 1e-9  # a difference beyond the shown columns still counts in its row's |Δ|
    table = paired_table_html(first, second, row_labels=[f"q{i}" for i in range(SIDE)],
                              column_labels=[f"k{j}" for j in range(SIDE)], decimals=3)
    rows = _rows(table)
    assert len(rows) == 10 and "… 54 more rows" in table and "first 6 of 64 columns of each" in table
    assert rows[1][:8] == ["q1", "0.064", "0.065", "0.066", "0.067", "0.068", "0.069", "…"]  # torch's first 6, cut
    assert rows[1][8:14] == rows[1][1:7]  # numpy beside it
    assert rows[3][-1] == "1.0e-09" and rows[2][-1] == "0.0e+00"
    small = paired_table_html([[0.5, 0.25]], [[0.5, 0.25]], row_labels=["<q>"], column_labels=["k0", "k1"])
    assert "more rows" not in small and "…" not in small and "&lt;q&gt;" in small
    with pytest.raises(ValueError):
        paired_table_html(np.zeros((2, 3)), np.zeros((3, 2)))


def test_basics_at_64_by_64_shows_capped_tables_a_short_preview_and_downloads_every_number():
    rng = np.random.default_rng(1)
    q, k, v = (_matrix_text(rng) for _ in range(3))
    out = basics.basics(q, k, v)
    assert "✓ agree" in out["status"]
    assert out["steps"].count('class="attn-paired-row"') == 3 * 10
    assert np.asarray(out["numbers"]["weights_corner"]).shape == (8, 8)
    saved = json.loads(Path(basics.download(q, k, v)["download"]).read_text(encoding="utf-8"))
    assert np.asarray(saved["weights"]).shape == np.asarray(saved["numpy_output"]).shape == (SIDE, SIDE)
    np.testing.assert_allclose(saved["weights"], saved["numpy_weights"], atol=1e-12)


def test_the_overlay_carries_the_scores_and_its_legend_starts_at_the_unchanged_photo():
    scores = np.random.default_rng(2).random((4, 5)) / 20  # (rows, cols)
    view = overlay_html(Image.new("RGB", (50, 40), "white"), scores, "where [CLS] looks", query=7, target_id="pick")
    payload = read_payload(view)
    np.testing.assert_allclose(from_fixed_point(payload["v"], payload["decimals"]), scores.reshape(-1), atol=5e-6)
    assert (payload["rows"], payload["cols"], payload["query"]) == (4, 5, 7)
    assert payload["src"].startswith("data:image/jpeg;base64,")
    stops = re.findall(r"rgba\(\d+, \d+, \d+, ([0-9.]+)\) ([0-9.]+)%", view)
    assert float(stops[0][0]) == 0.0 and float(stops[-1][0]) == ALPHA  # transparent at 0, α at the maximum
    with pytest.raises(ValueError):
        overlay_html(Image.new("RGB", (8, 8)), scores, query=20)


def test_a_panel_sends_labels_once_and_every_map_it_offers():
    rng = np.random.default_rng(3)
    labels = ["[CLS]", "a", "b", "[SEP]"]
    maps = {
        (layer, head): (heatmap_html(rng.random((4, 4)), labels, labels, f"layer {layer}, head {head}"), f"badge {layer}", {})
        for layer in range(2) for head in ("mean", 0, 1)
    }
    view = panel_html(maps, ["0", "1"], 2, (1, 0))
    payload = read_payload(view)
    assert set(payload["maps"]) == {f"{layer}:{head}" for layer in range(2) for head in ("mean", 0, 1)}
    assert payload["shown"] == [1, 0] and payload["maps"]["0:1"]["title"] == "layer 0, head 1"
    assert all("q" not in entry["payload"] for entry in payload["maps"].values())
    assert view.count("[CLS]") == 2  # the labels travel once: the first heatmap's query and key labels
    with pytest.raises(ValueError):
        panel_html(maps, ["0", "1"], 2, (2, 0))


def test_a_clicked_patch_becomes_the_query(checkpoints, use_settings):
    from attn_demos.ui import images

    use_settings(classify_image_model=str(checkpoints["vit"]))
    out = images.classify_image(Image.new("RGB", (64, 64), "teal"), 1, 2, "")
    result = out["state"]
    assert out["query"].selected == 0 and read_payload(out["overlay"])["query"] is None  # [CLS]
    picked = images.pick(json.dumps({"view": "overlay", "patch": 5, "row": 1, "col": 1, "n": 1}), result, 1, 2)
    query = result.prefix + 5
    assert picked["query"].selected == query and picked["numbers"]["query"] == "patch 1,1"
    overlay = read_payload(picked["overlay"])
    expected = result.library[1, 2, query, result.prefix:]  # (N,) that patch's row, as the model computed it
    np.testing.assert_allclose(from_fixed_point(overlay["v"], overlay["decimals"]), expected, atol=5e-6)
    assert overlay["query"] == 5 and "✓" in picked["badge"]
    assert images.pick(json.dumps({"view": "heatmap", "query": 1}), result, 1, 2) == {}
    exported = json.loads(Path(images.export(result, out["inputs"], 1, 2, query)["json"]).read_text())
    assert exported["chosen_token"] == "patch 1,1"
    np.testing.assert_allclose(np.asarray(exported["query_to_patches"]).reshape(-1), expected, atol=1e-6)
