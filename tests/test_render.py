"""The render layer: heatmaps, token highlighting, patch overlays, exports and browser payloads."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import json  # noqa: E402
import re  # noqa: E402
from html.parser import HTMLParser  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from attn_demos.render.export import export_json, export_png  # noqa: E402
from attn_demos.render.heatmap import MAX_TICK_LABELS, head_grid_image, heatmap_figure, heatmap_image  # noqa: E402
from attn_demos.render.overlay import patch_overlay  # noqa: E402
from attn_demos.render.payload import compact_matrix, expand_matrix, payload_size  # noqa: E402
from attn_demos.render.tokens import highlight_html, highlighted_text_value  # noqa: E402

VIRIDIS_LOW = np.array(colormaps["viridis"](0.0)[:3]) * 255  # colour of the scale's minimum
VIRIDIS_HIGH = np.array(colormaps["viridis"](1.0)[:3]) * 255  # colour of the scale's maximum


def random_attention(rng, *shape):
    weights = np.exp(2 * rng.normal(size=shape))
    return weights / weights.sum(axis=-1, keepdims=True)


def near(pixels: np.ndarray, colour: np.ndarray, tolerance: float = 12) -> np.ndarray:
    """(..., 3) -> (...) bool: pixel within tolerance of colour on every channel."""
    return (np.abs(pixels[..., :3].astype(float) - colour) <= tolerance).all(axis=-1)


# ---------------------------------------------------------------- heatmaps


def test_heatmap_identity_cells_have_the_scale_end_colours():
    figure = heatmap_figure(np.eye(2), ["a", "b"], ["a", "b"], "identity")
    assert isinstance(figure, Figure)
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())  # (H, W, 4)
    axes = figure.axes[0]

    def pixel(row, col):  # a point inside the cell, away from the printed value at its centre
        x, y = axes.transData.transform((col - 0.35, row - 0.35))
        return pixels[pixels.shape[0] - int(round(y)), int(round(x))]

    assert near(pixel(0, 0), VIRIDIS_HIGH) and near(pixel(1, 1), VIRIDIS_HIGH)
    assert near(pixel(0, 1), VIRIDIS_LOW) and near(pixel(1, 0), VIRIDIS_LOW)


def test_heatmap_image_is_rgb_and_contains_both_ends_of_the_scale():
    image = heatmap_image(np.eye(3), ["x", "y", "z"], ["x", "y", "z"], "t")
    assert image.mode == "RGB"
    assert image.width > 200 and image.height > 200
    pixels = np.asarray(image)
    assert near(pixels, VIRIDIS_HIGH, 3).sum() > 100
    assert near(pixels, VIRIDIS_LOW, 3).sum() > 100


def test_heatmap_labels_every_token_up_to_the_limit_then_thins():
    labels = [f"t{i}" for i in range(40)]
    axes = heatmap_figure(np.ones((40, 40)) / 40, labels, labels).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == labels
    assert [t.get_text() for t in axes.get_yticklabels()] == labels

    long = [f"t{i}" for i in range(150)]
    axes = heatmap_figure(np.ones((3, 150)) / 150, ["q0", "q1", "q2"], long).axes[0]
    shown = axes.get_xticks()
    assert 1 < len(shown) <= MAX_TICK_LABELS
    assert [t.get_text() for t in axes.get_xticklabels()] == [long[int(i)] for i in shown]


def test_heatmap_text_is_literal_not_mathtext():
    labels = ["$", "$x_$", "${$", "<s>", "😀", "line\nbreak"]  # "$x_$" as mathtext is a parse error
    image = heatmap_image(np.eye(6), labels, labels, title="costs $^$ or $\\foo$")
    assert image.mode == "RGB"
    axes = heatmap_figure(np.eye(6), labels, labels).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == labels[:5] + ["line\\nbreak"]


def test_heatmap_rejects_labels_that_do_not_fit():
    with pytest.raises(ValueError, match="labels"):
        heatmap_figure(np.eye(3), ["a", "b"], ["a", "b", "c"])


def test_head_grid_per_head_scaling_brightens_a_diffuse_head():
    tokens = 16
    weights = np.stack([np.full((tokens, tokens), 1 / tokens), np.eye(tokens)])[None]  # (1, 2, T, T)
    own = np.asarray(head_grid_image(weights, "own scale", per_head_scale=True))
    shared = np.asarray(head_grid_image(weights, "shared scale", per_head_scale=False))
    # uniform head: all cells at its own max (bright) vs 1/16 of the shared max (dark)
    assert near(own, VIRIDIS_HIGH, 3).sum() > 3 * near(shared, VIRIDIS_HIGH, 3).sum()


def test_head_grid_keeps_a_single_peak_of_a_long_sequence_and_lays_out_heads_across():
    weights = np.zeros((1, 1, 512, 512))  # (L, H, T, T)
    weights[0, 0, 100, 300] = 1.0
    image = head_grid_image(weights, "one peak", per_head_scale=False)
    assert image.mode == "RGB"
    assert near(np.asarray(image), VIRIDIS_HIGH, 3).any()  # max-pooled to 64 × 64, not averaged away

    grid = head_grid_image(random_attention(np.random.default_rng(0), 6, 12, 40, 40), "6 × 12")
    assert grid.mode == "RGB" and grid.width > grid.height


# ---------------------------------------------------------------- token highlighting


class SpanReader(HTMLParser):
    """Collects the attn-token spans (attributes and text) and the whole visible text."""

    def __init__(self):
        super().__init__()
        self.spans, self.text, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "attn-token" in attrs.get("class", "").split():
            self._open = {**attrs, "text": ""}

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None

    def handle_data(self, data):
        self.text.append(data)
        if self._open is not None:
            self._open["text"] += data


def read_spans(markup: str) -> SpanReader:
    reader = SpanReader()
    reader.feed(markup)
    return reader


def alpha_of(span: dict) -> float:
    return float(re.search(r"rgba\(\d+, \d+, \d+, ([0-9.]+)\)", span["style"]).group(1))


def test_one_span_per_token_with_index_and_exact_score():
    tokens = ["[CLS]", "the", "cat", "##s", "sat", "[SEP]"]
    scores = [0.05, 0.1, 0.4, 0.2, 0.123456789, 0.0]
    spans = read_spans(highlight_html(tokens, scores)).spans
    assert len(spans) == len(tokens)
    assert [int(s["data-index"]) for s in spans] == list(range(len(tokens)))
    assert [float(s["data-score"]) for s in spans] == scores
    assert "0.123456789" in spans[4]["title"]


def test_alpha_is_proportional_to_score_over_the_max():
    spans = read_spans(highlight_html(["a", "b", "c"], [0.2, 0.8, 0.0])).spans
    assert [alpha_of(s) for s in spans] == pytest.approx([0.25, 1.0, 0.0], abs=1e-3)


def test_token_text_is_escaped_and_unicode_kept():
    tokens = ["<script>", "&", "😀", "שלום", '"q"']
    markup = highlight_html(tokens, [1, 1, 1, 1, 1], title="<b>title</b>")
    assert "<script>" not in markup and "<b>" not in markup
    assert "&lt;script&gt;" in markup and "&amp;" in markup
    spans = read_spans(markup).spans
    assert [s["text"] for s in spans] == tokens
    assert [s["title"].rsplit(":", 1)[0] for s in spans] == tokens


@pytest.mark.parametrize(
    "tokens, text",
    [
        (["[CLS]", "token", "##ization", "works", "[SEP]"], "[CLS] tokenization works [SEP]"),
        (["▁Hello", "▁wor", "ld", "!", "</s>"], "Hello world! </s>"),
        (["<s>", "Hello", "Ġwor", "ld", "</s>"], "<s> Hello world </s>"),
    ],
)
def test_subword_markers_are_shown_as_words(tokens, text):
    reader = read_spans(highlight_html(tokens, np.ones(len(tokens))))
    assert "".join(reader.text) == text
    assert len(reader.spans) == len(tokens)


def test_highlighted_text_value_is_accepted_by_gradio():
    import gradio as gr

    value = highlighted_text_value(["[CLS]", "token", "##ization", "[SEP]"], [0.1, 0.4, 0.2, 0.0])
    assert value == [("[CLS]", 0.25), (" token", 1.0), ("ization", 0.5), (" [SEP]", 0.0)]
    data = gr.HighlightedText().postprocess(value)
    assert [(t.token, t.class_or_confidence) for t in data.root] == value


def test_scores_must_match_tokens():
    with pytest.raises(ValueError, match="2 tokens but 3 scores"):
        highlight_html(["a", "b"], [1, 2, 3])


# ---------------------------------------------------------------- patch overlay


def gray(width, height, mode="RGB"):
    return Image.new("RGB", (width, height), (128, 128, 128)).convert(mode)


def test_overlay_changes_high_patches_and_leaves_zero_patches_alone():
    scores = np.zeros((2, 3))  # (rows, cols) on a non-square grid
    scores[0, 2] = 1.0
    scores[1, 0] = 0.25
    photo = gray(300, 200)
    result = patch_overlay(photo, scores, alpha=0.6)
    assert result.mode == "RGB" and result.size == (300, 200)
    change = np.abs(np.asarray(result, float) - np.asarray(photo, float)).sum(axis=-1)  # (200, 300)
    hot, mild, cold = change[10:90, 210:290], change[110:190, 10:90], change[10:90, 10:90]
    assert (cold == 0).all()
    assert hot.min() > mild.max() > 0


def test_overlay_resizes_to_the_model_input_and_accepts_other_modes():
    result = patch_overlay(gray(500, 333, "RGBA"), np.ones((14, 14)), size=(224, 224))
    assert result.size == (224, 224) and result.mode == "RGB"
    same = patch_overlay(gray(64, 48, "L"), np.ones((3, 4)), alpha=0.0)
    assert np.array_equal(np.asarray(same), np.asarray(gray(64, 48)))


def test_overlay_grid_lines_fall_on_patch_borders():
    result = np.asarray(patch_overlay(gray(120, 60), np.zeros((2, 4)), grid_lines=True))  # patches 30 × 30
    assert (result[:, 30] == 255).all() and (result[30, :] == 255).all()
    assert (np.delete(result[:, 15], 30, axis=0) == 128).all()  # except where it crosses the row border


# ---------------------------------------------------------------- exports


def test_export_png_writes_a_new_png_each_time(tmp_path):
    image = Image.fromarray(np.arange(12 * 20 * 3, dtype=np.uint8).reshape(12, 20, 3))
    first, second = export_png(image, tmp_path), export_png(image, tmp_path)
    assert first != second and first.parent == tmp_path and first.suffix == ".png"
    with Image.open(first) as reloaded:
        assert reloaded.format == "PNG" and reloaded.size == (20, 12) and reloaded.mode == "RGB"
        assert np.array_equal(np.asarray(reloaded), np.asarray(image))


def test_export_json_round_trips_the_numbers_given(tmp_path):
    payload = {
        "title": "layer 0 · head 3 <b>&",
        "query_tokens": ["[CLS]", "😀", "שלום"],
        "matrix": [[0.1, 0.2, 0.7], [1 / 3, 2 / 3, 0.0], [1e-7, 0.999999, 1.0]],
        "recomputed_max_abs_err": 4.5e-7,
        "notices": [],
    }
    path = export_json(payload, tmp_path / "session")
    assert path.suffix == ".json" and path.parent == tmp_path / "session"
    with path.open(encoding="utf-8") as handle:
        assert json.load(handle) == payload
    assert export_json(payload, tmp_path / "session") != path


def test_export_json_converts_numpy_and_non_finite(tmp_path):
    matrix = np.array([[0.25, 0.75], [np.nan, 1.0]], dtype=np.float32)
    path = export_json({"matrix": matrix, "layer": np.int64(2), "ok": np.bool_(True)}, tmp_path)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == {"matrix": [[0.25, 0.75], [None, 1.0]], "layer": 2, "ok": True}


# ---------------------------------------------------------------- browser payloads


def test_payload_size_counts_utf8_bytes_of_compact_json():
    assert payload_size({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert payload_size("é") == 4  # two quotes + two UTF-8 bytes


def test_small_matrix_is_sent_dense_and_round_trips():
    matrix = random_attention(np.random.default_rng(1), 100, 120)  # (Tq, Tk)
    payload = compact_matrix(matrix)
    assert payload["format"] == "dense" and payload["shape"] == [100, 120]
    restored = expand_matrix(json.loads(json.dumps(payload)))
    assert np.abs(restored - matrix).max() <= 1e-3


def test_large_matrix_keeps_top_k_per_row_under_two_megabytes():
    matrix = random_attention(np.random.default_rng(2), 512, 512)  # (Tq, Tk)
    payload = compact_matrix(matrix, max_cells=65_536)
    assert payload_size(payload) < 2_000_000
    assert payload["format"] == "topk" and payload["k"] * 512 <= 65_536
    restored = expand_matrix(json.loads(json.dumps(payload)))
    kept = np.zeros_like(matrix, dtype=bool)
    kept[np.repeat(np.arange(512), payload["k"]), np.array(payload["indices"]).reshape(-1)] = True
    assert kept.sum(axis=1).tolist() == [payload["k"]] * 512
    assert np.abs(restored[kept] - matrix[kept]).max() <= 1e-3
    assert (restored[~kept] == 0).all()
    smallest_kept = np.where(kept, matrix, np.inf).min(axis=1)  # (Tq,)
    largest_dropped = np.where(kept, -np.inf, matrix).max(axis=1)  # (Tq,)
    assert (largest_dropped <= smallest_kept).all()
    np.testing.assert_allclose(payload["row_mass"], np.where(kept, matrix, 0).sum(axis=1), atol=1e-4)
