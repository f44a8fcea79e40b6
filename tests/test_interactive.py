"""The interactive views' HTML and payloads, without a browser: what is embedded equals the input to
the rounding each view states, labels are escaped, sizes stay bounded, bad input gets one line."""

from __future__ import annotations

import ast
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps

from attn_demos.render.interactive import (
    INTERACTIVE_HEAD,
    INTERACTIVE_JS,
    ColourScale,
    answer_span_html,
    head_grid_html,
    head_view_html,
    heatmap_html,
    image_legend_html,
    legend_html,
    neuron_view_html,
    numbers_table_html,
    parse_selection,
    read_payload,
)
from attn_demos.render.interactive.embed import display_label, fixed_point, from_fixed_point
from attn_demos.render.interactive.head_view import MAX_BYTES
from attn_demos.render.interactive.page import VIEW_SCRIPTS

HALF_THOUSANDTH = 5e-4 + 1e-7  # the head view's rounding to 3 places, done in float32
PACKAGE = Path(__file__).resolve().parents[1] / "attn_demos" / "render" / "interactive"
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "a&b", "'quoted'", "</div>"]


def random_attention(rng, *shape, sharpness: float = 2.0) -> np.ndarray:
    logits = sharpness * rng.normal(size=shape)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def dense_from_head_view(payload: dict) -> np.ndarray:
    """The head view's sparse layers back to (L, H, Tq, Tk), independently of the script."""
    layers, heads, tq, tk = len(payload["layers"]), payload["heads"], len(payload["q"]), len(payload["k"])
    dense = np.zeros((layers, heads, tq, tk))
    for layer, sparse in enumerate(payload["w"]):
        pairs = iter(zip(sparse["kw"][0::2], sparse["kw"][1::2]))
        for row, count in enumerate(sparse["n"]):
            head, query = divmod(row, tq)
            for _ in range(count):
                key, weight = next(pairs)
                dense[layer, head, query, key] = weight / 10 ** payload["decimals"]
    return dense


# ----------------------------------------------------------------------------- shared embedding
def test_fixed_point_round_trip_and_non_finite_values():
    values = np.array([0.12344, 0.12346, -1.5, np.nan, np.inf, 0.0])
    integers = fixed_point(values, 4)
    assert integers == [1234, 1235, -15000, None, None, 0]
    back = from_fixed_point(integers, 4)
    assert np.allclose(back[:3], [0.1234, 0.1235, -1.5]) and np.isnan(back[3:5]).all()


def test_display_labels_escape_control_characters_and_cut_long_ones():
    assert display_label("") == "''"
    assert display_label("a\nb") == "a\\nb"
    assert display_label("x" * 100).endswith("…") and len(display_label("x" * 100)) == 40
    assert display_label("<b>") == "<b>"  # kept as text: the script writes it with textContent


def test_parse_selection():
    assert parse_selection('{"view": "grid", "layer": 3, "head": 5, "n": 7, "t": 1}') == {"view": "grid", "layer": 3, "head": 5}
    for bad in (None, "", "3,5", "[1, 2]", '{"layer": 3}', "{"):
        assert parse_selection(bad) is None


def test_the_head_carries_script_and_style_and_the_script_parses():
    assert INTERACTIVE_HEAD.count("<script>") == 1 and INTERACTIVE_HEAD.count("<style>") == 1
    assert "window.attnViews" in INTERACTIVE_JS
    assert sorted(VIEW_SCRIPTS) == sorted(path.name for path in PACKAGE.glob("*.js"))  # every script is loaded
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the script's syntax is checked by the browser tests only")
    for name in VIEW_SCRIPTS:  # each view's script parses alone
        checked = subprocess.run([node, "--check", str(PACKAGE / name)], capture_output=True, text=True)
        assert checked.returncode == 0, (name, checked.stderr)
    broken = subprocess.run([node, "--check", "-"], input=INTERACTIVE_JS[: len(INTERACTIVE_JS) // 2], capture_output=True, text=True)
    assert broken.returncode != 0  # control: a truncated script fails the same check


def test_the_package_imports_neither_gradio_nor_tasks():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("gradio", "attn_demos.tasks", "attn_demos.adapters")), f"{path.name}: {name}"


# ----------------------------------------------------------------------------- colour scale
def test_colour_scale_ends_are_the_colormap_ends_and_the_middle_interpolates():
    scale = ColourScale(0.0, 2.0, "viridis")
    low, high = (np.round(np.array(colormaps["viridis"](x)[:3]) * 255).astype(int) for x in (0.0, 1.0))
    first, last, below = scale.css_colours([0.0, 2.0, -5.0])
    assert first == "rgb({}, {}, {})".format(*low) and last == "rgb({}, {}, {})".format(*high)
    assert below == first  # clipped
    stops = np.array(scale.stops())
    halfway = (stops[7] + stops[8]) / 2  # value 1.0 sits halfway between the 8th and 9th of 16 stops
    assert scale.css_colours([1.0])[0] == "rgb({}, {}, {})".format(*np.round(halfway).astype(int))


def test_legend_ticks_run_from_vmin_to_vmax_and_escape_the_label():
    legend = legend_html(ColourScale(-1.0, 3.0, "magma"), "<i>score</i>", decimals=2)
    ticks = re.findall(r'class="attn-tick" data-frac="([\d.]+)"[^>]*>([-\d.]+)<', legend)
    assert [float(v) for _, v in ticks] == [-1.0, 0.0, 1.0, 2.0, 3.0]
    assert "<i>" not in legend and "&lt;i&gt;score&lt;/i&gt;" in legend
    image = image_legend_html("inferno", 0.0, 0.31)
    assert "0.310" in image and "0.000" in image
    with pytest.raises(ValueError, match="unknown colormap"):
        image_legend_html("no-such-map", 0, 1)


# ----------------------------------------------------------------------------- heatmap
def test_heatmap_embeds_the_matrix_rounded_to_four_places(rng=np.random.default_rng(0)):
    matrix = random_attention(rng, 7, 9)
    matrix[2, 3] = np.nan
    queries, keys = [f"q{i}" for i in range(7)], ["[CLS]"] + [f"k{i}" for i in range(7)] + ["[SEP]"]
    view = heatmap_html(matrix, queries, keys, "layer 1, head 2", chosen_query=4, marked_rows=[5, 1])
    payload = read_payload(view)
    embedded = from_fixed_point(payload["m"], payload["decimals"]).reshape(7, 9)
    assert payload["decimals"] == 4
    np.testing.assert_allclose(embedded[np.isfinite(matrix)], np.round(matrix[np.isfinite(matrix)], 4), atol=1e-12)
    assert np.isnan(embedded[2, 3])
    assert not np.allclose(embedded, np.round(matrix, 2), equal_nan=True)  # control: not a coarser rounding
    assert payload["q"] == queries and payload["k"] == keys
    assert payload["ks"] == [1, 0, 0, 0, 0, 0, 0, 0, 1] and payload["qs"] == [0] * 7
    assert payload["chosen"] == 4 and payload["marked"] == [1, 5]
    assert payload["vmin"] == 0.0 and payload["vmax"] == pytest.approx(np.nanmax(matrix[:, 1:-1]))  # [CLS], [SEP] left out
    assert '<div class="attn-title">layer 1, head 2</div>' in view


def test_heatmap_can_send_six_places():
    matrix = np.array([[0.1234567, 0.8765433]])
    payload = read_payload(heatmap_html(matrix, ["q"], ["a", "b"], decimals=6))
    assert payload["m"] == [123457, 876543] and payload["decimals"] == 6


def test_heatmap_rejects_bad_input_in_one_line():
    with pytest.raises(ValueError, match="non-empty"):
        heatmap_html(np.zeros((0, 3)), [], ["a", "b", "c"])
    with pytest.raises(ValueError, match="2 labels for 3"):
        heatmap_html(np.zeros((3, 3)), ["a", "b"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="outside the 3 query rows"):
        heatmap_html(np.zeros((3, 3)), ["a", "b", "c"], ["a", "b", "c"], chosen_query=3)


def test_heatmap_numbers_its_cells_only_for_small_matrices():
    small = read_payload(heatmap_html(np.eye(2), ["a", "b"], ["a", "b"]))
    big = read_payload(heatmap_html(np.full((1000, 1000), 1e-3), ["t"] * 1000, ["t"] * 1000))
    assert small["annotate"] is True and big["annotate"] is False


def test_a_few_special_tokens_cannot_flatten_the_colour_scale():
    """A [SEP] column holding most of the weight would make every other cell the bottom colour: the
    default scale leaves special tokens' rows and columns out, and the legend says so."""
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    matrix = np.full((5, 5), 0.02)  # (Tq, Tk)
    matrix[:, 4] = 0.9  # the [SEP] sink
    matrix[2, 1] = 0.06  # the largest weight between words
    view = heatmap_html(matrix, tokens, tokens)
    payload = read_payload(view)
    assert payload["vmax"] == pytest.approx(0.06) and payload["fixed"] is False
    assert "without special tokens" in view
    plain = heatmap_html(matrix, ["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e"])
    assert read_payload(plain)["vmax"] == pytest.approx(0.9) and "without special tokens" not in plain  # control
    given = read_payload(heatmap_html(matrix, tokens, tokens, scale=ColourScale(0.0, 1.0)))
    assert (given["vmin"], given["vmax"], given["fixed"]) == (0.0, 1.0, True)  # a given scale stays as given


def test_masked_cells_are_sent_as_counts_and_named_in_the_legend():
    causal = np.tril(np.full((3, 3), 0.5))  # (Tq, Tk)
    view = heatmap_html(causal, ["a", "b", "c"], ["a", "b", "c"], visible_keys=[1, 2, 3])
    assert read_payload(view)["visible"] == [1, 2, 3] and "masked" in view
    assert read_payload(heatmap_html(causal, ["a", "b", "c"], ["a", "b", "c"]))["visible"] is None
    with pytest.raises(ValueError, match="visible_keys"):
        heatmap_html(causal, ["a", "b", "c"], ["a", "b", "c"], visible_keys=[1, 4, 3])


@pytest.mark.parametrize("build", ["heatmap", "head", "grid", "neuron", "answer", "table"])
def test_user_text_is_escaped_everywhere(build):
    labels = HOSTILE
    n = len(labels)
    weights = np.full((1, 1, n, n), 1 / n)
    title = "<script>title()</script>"
    if build == "heatmap":
        view = heatmap_html(weights[0, 0], labels, labels, title)
    elif build == "head":
        view = head_view_html(weights, labels, title=title, layer_labels=["<b>0</b>"])
    elif build == "grid":
        view = head_grid_html(weights, title=title, layer_labels=["<b>0</b>"])
    elif build == "neuron":
        view = neuron_view_html(neuron_terms(np.random.default_rng(1), labels, "<script>q</script>"), title)
    elif build == "answer":
        view = answer_span_html(labels, np.arange(n), 1, 2, title)
    else:
        view = numbers_table_html(weights[0, 0], labels, labels, title)
    lowered = view.lower()
    assert "<script" not in lowered and "<img" not in lowered
    assert "&lt;script&gt;" in view  # control: the text is there, escaped
    if build in ("heatmap", "head", "neuron"):
        payload = read_payload(view)  # the labels come back exactly through the attribute
        found = payload["keys"] if build == "neuron" else payload["q"]
        assert found == labels


# ----------------------------------------------------------------------------- head view
def test_small_head_view_embeds_every_weight_to_three_places():
    rng = np.random.default_rng(2)
    weights = random_attention(rng, 2, 3, 5, 6)  # cross-attention shape: 5 queries, 6 keys
    view = head_view_html(weights, [f"d{i}" for i in range(5)], [f"e{i}" for i in range(6)], layer=1)
    payload = read_payload(view)
    assert payload["min_weight"] == 0.0 and payload["cross"] is True and payload["layer"] == 1
    np.testing.assert_allclose(dense_from_head_view(payload), weights, rtol=0, atol=HALF_THOUSANDTH)
    assert not np.allclose(dense_from_head_view(payload), np.round(weights, 2), rtol=0, atol=HALF_THOUSANDTH)  # control
    assert payload["colours"][:3] == ["#4477AA", "#EE6677", "#228833"]


def test_a_nan_weight_is_sent_as_no_line_and_the_rest_as_they_are():
    rng = np.random.default_rng(7)
    weights = random_attention(rng, 2, 2, 4, 4)
    broken = weights.copy()
    broken[1, 0, 2, 3] = np.nan
    dense = dense_from_head_view(read_payload(head_view_html(broken, [f"t{i}" for i in range(4)])))
    assert dense[1, 0, 2, 3] == 0.0  # no line for the NaN weight
    keep = ~np.isnan(broken)
    np.testing.assert_allclose(dense[keep], weights[keep], rtol=0, atol=HALF_THOUSANDTH)


def test_head_view_at_128_tokens_6_layers_12_heads_stays_within_2_mb():
    rng = np.random.default_rng(3)
    weights = random_attention(rng, 6, 12, 128, 128)  # softmax of N(0, 2²) logits
    view = head_view_html(weights, [f"t{i}" for i in range(128)])
    payload = read_payload(view)
    size = len(view.encode())
    print(f"head view 128 tokens × 6 layers × 12 heads: {size} bytes, weights < {payload['min_weight']} dropped")
    assert size <= MAX_BYTES == 2_000_000
    floor = payload["min_weight"]
    assert floor == 0.01
    dense = dense_from_head_view(payload)
    sent = dense > 0
    np.testing.assert_allclose(dense[sent], weights[sent], rtol=0, atol=HALF_THOUSANDTH)
    assert (weights[~sent] < floor + HALF_THOUSANDTH).all() and (weights[sent] > floor - HALF_THOUSANDTH).all()
    assert (dense[sent] >= floor).all()


def test_head_view_raises_its_threshold_until_it_fits_and_says_so():
    rng = np.random.default_rng(4)
    # adversarial: every row spread evenly over its first 60 keys (1/60 ≈ 0.0167 ≥ 0.01)
    weights = np.zeros((6, 12, 128, 128))
    weights[..., :60] = 1 / 60
    weights = weights[..., rng.permutation(128)]
    view = head_view_html(weights, [f"t{i}" for i in range(128)])
    assert len(view.encode()) <= MAX_BYTES
    assert read_payload(view)["min_weight"] == 0.02  # 0.01 would need ~7 MB
    with pytest.raises(ValueError, match="do not fit 1000 bytes"):
        head_view_html(weights, [f"t{i}" for i in range(128)], max_bytes=1000)


def test_a_small_head_view_that_does_not_fit_densely_drops_its_faintest_lines():
    """One layer of 12 heads at 128 tokens is few enough values to be sent densely, but not in
    800 kB (the Explorer's bound): the view then drops weights below a threshold, as larger ones do."""
    rng = np.random.default_rng(3)
    weights = random_attention(rng, 1, 12, 128, 128, sharpness=1.0)  # 196,608 values (≤ DENSE_UP_TO), diffuse
    view = head_view_html(weights, [f"t{i}" for i in range(128)], max_bytes=800_000)
    assert len(view.encode()) <= 800_000 and read_payload(view)["min_weight"] == 0.01
    assert read_payload(head_view_html(weights, [f"t{i}" for i in range(128)]))["min_weight"] == 0.0  # 2 MB: dense


@pytest.mark.parametrize("concentration", [0.02, 1.0, 50.0])  # peaky, plain and near-uniform rows
def test_head_view_size_bound_is_below_the_exact_count_and_the_exact_count_is_what_is_sent(concentration):
    """The one-pass lower bound that lets long inputs skip low floors never exceeds the exact count
    of the weights' digits and commas, which in turn is what the payload's "w" lists take, to the byte."""
    from attn_demos.render.interactive import head_view as module

    rng = np.random.default_rng(5)
    weights = rng.dirichlet(np.full(40, concentration), size=(2, 3, 40))  # (L, H, Tq, Tk)
    thousandths = np.stack([module._thousandths(weights[i]) for i in range(2)])
    for floor in (0, 5, 10, 20, 50, 100, 500):
        keep = module._kept(thousandths, floor)
        exact = module._weights_json_bytes(thousandths, keep)
        assert module._weights_json_bytes_at_least(keep) <= exact
        sent = [module._sparse_layer(thousandths[i], floor) for i in range(2)]
        # each number with the comma after it: a list's JSON less its brackets, plus the last comma
        numbers = sum(len(json.dumps(layer["n"], separators=(",", ":"))) - 2 + 1 for layer in sent)
        numbers += sum(len(json.dumps(layer["kw"], separators=(",", ":"))) - 2 + (1 if layer["kw"] else 0) for layer in sent)
        assert numbers == exact


def test_head_view_rejects_bad_input():
    with pytest.raises(ValueError, match="layers, heads, Tq, Tk"):
        head_view_html(np.zeros((3, 3)), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        head_view_html(np.full((1, 1, 2, 2), 2.0), ["a", "b"])
    with pytest.raises(ValueError, match="layer 2 is outside 0..0"):
        head_view_html(np.zeros((1, 1, 2, 2)), ["a", "b"], layer=2)
    with pytest.raises(ValueError, match=r"heads \[1\] are outside 0..0"):
        head_view_html(np.zeros((1, 1, 2, 2)), ["a", "b"], heads=[1])


def test_head_view_opens_on_the_heads_given_and_follows_its_group():
    weights = random_attention(np.random.default_rng(3), 2, 4, 5, 5)  # (L, H, T, T)
    view = head_view_html(weights, [f"t{i}" for i in range(5)], layer=1, heads=[2], group="explore")
    payload = read_payload(view)
    assert (payload["layer"], payload["shown_heads"], payload["shown_from"]) == (1, [2], 0.1)
    assert 'data-attn-group="explore"' in view
    assert read_payload(head_view_html(weights, [f"t{i}" for i in range(5)]))["shown_heads"] is None  # the top heads


def test_a_selection_carries_layer_head_and_query_to_its_group():
    from attn_demos.render.interactive import selection_html

    view = selection_html("translate", "mean", 2, None)
    assert read_payload(view) == {"group": "translate", "layer": "mean", "head": 2, "query": None}
    assert 'data-attn-group="translate"' in view and 'data-attn-view="selection"' in view
    assert read_payload(selection_html("explore", 3, "max", 7))["query"] == 7


# ----------------------------------------------------------------------------- head grid
def test_grid_thumbnails_are_max_pooled_and_scaled_per_head():
    rng = np.random.default_rng(5)
    weights = random_attention(rng, 2, 3, 70, 70)
    payload = read_payload(head_grid_html(weights, shown=(1, 2), title="grid"))
    assert (payload["rows"], payload["cols"]) == (24, 24)  # 70 cells pooled by 3 -> 24
    tiles = from_fixed_point(payload["t"], payload["decimals"]).reshape(2, 3, 24, 24)
    expected = np.zeros((24, 24))
    tile = weights[1, 0]
    for r in range(24):
        for c in range(24):
            expected[r, c] = tile[3 * r : 3 * r + 3, 3 * c : 3 * c + 3].max()
    np.testing.assert_allclose(tiles[1, 0], np.round(expected / expected.max(), 2), atol=1e-12)
    assert tiles.reshape(6, -1).max(axis=1).tolist() == [1.0] * 6
    assert payload["shown"] == [1, 2] and payload["layers"] == ["0", "1"]
    with pytest.raises(ValueError, match="outside 2 layers × 3 heads"):
        head_grid_html(weights, shown=(2, 0))


def test_a_nan_weight_counts_as_zero_in_its_thumbnail():
    rng = np.random.default_rng(6)
    weights = random_attention(rng, 2, 2, 70, 70)
    broken = weights.copy()
    broken[1, 1, 4, 5] = np.nan  # block (1, 1) of layer 1, head 1
    clean = weights.copy()
    clean[1, 1, 4, 5] = 0.0
    tiles = from_fixed_point(read_payload(head_grid_html(broken))["t"], 2)
    assert not np.isnan(tiles).any()
    assert np.array_equal(tiles, from_fixed_point(read_payload(head_grid_html(clean))["t"], 2))


# ----------------------------------------------------------------------------- neuron view
def neuron_terms(rng, key_labels, query_label="it", with_mask=True) -> dict:
    """A neuron_terms-shaped dict computed here with numpy, independently of any adapter."""
    tk, d = len(key_labels), 8
    q, k = rng.normal(size=d), rng.normal(size=(tk, d))  # (d,), (Tk, d)
    products = q[None, :] * k  # (Tk, d)
    sums = products.sum(axis=1)  # (Tk,)
    scale = 1 / np.sqrt(d)
    bias = rng.normal(size=tk) * 0.1  # (Tk,)
    mask = np.zeros(tk)
    if with_mask:
        mask[-1] = -np.inf
    logits = sums * scale + bias + mask  # (Tk,)
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()  # (Tk,)
    return {"q": q, "k": k, "products": products, "sums": sums, "scale": scale, "bias": bias, "mask": mask,
            "logits": logits, "softmax": softmax, "checked_against": softmax.astype(np.float32).astype(np.float64),
            "key_labels": key_labels, "query_label": query_label, "layer": 3, "head": 5}


def test_neuron_view_embeds_the_terms():
    terms = neuron_terms(np.random.default_rng(6), ["[CLS]", "the", "cat", "[SEP]"])
    payload = read_payload(neuron_view_html(terms, "neuron"))
    np.testing.assert_allclose(payload["softmax"], terms["softmax"], atol=5e-10)
    np.testing.assert_allclose(payload["checked_against"], terms["checked_against"], atol=5e-10)
    np.testing.assert_allclose(payload["sums"], terms["sums"], atol=5e-10)
    np.testing.assert_allclose(from_fixed_point(payload["p"], 4).reshape(4, 8), np.round(terms["products"], 4), atol=1e-12)
    np.testing.assert_allclose(from_fixed_point(payload["q"], 4), np.round(terms["q"], 4), atol=1e-12)
    assert payload["mask"][:3] == [0.0, 0.0, 0.0] and payload["mask"][3] is None  # -inf travels as null
    assert payload["logits"][3] is None and payload["softmax"][3] == 0.0
    assert (payload["layer"], payload["head"], payload["query"], payload["d"]) == (3, 5, "it", 8)
    assert payload["scale"] == pytest.approx(8**-0.5)


def test_neuron_view_names_the_column_it_is_checked_against():
    terms = neuron_terms(np.random.default_rng(6), ["[CLS]", "the", "cat", "[SEP]"])
    assert read_payload(neuron_view_html(terms))["checked_against_label"] == "library weight"  # eager, the default
    terms["checked_against_label"] = "verified weight (sdpa)"
    assert read_payload(neuron_view_html(terms))["checked_against_label"] == "verified weight (sdpa)"


def test_neuron_view_without_bias_or_mask_and_its_errors():
    terms = neuron_terms(np.random.default_rng(7), ["a", "b", "c"], with_mask=False)
    terms["bias"], terms["mask"] = None, None
    payload = read_payload(neuron_view_html(terms))
    assert payload["bias"] is None and payload["mask"] is None
    del terms["checked_against"]
    with pytest.raises(ValueError, match="missing checked_against"):
        neuron_view_html(terms)
    terms = neuron_terms(np.random.default_rng(7), ["a", "b", "c"])
    terms["products"] = terms["products"][:, :4]
    with pytest.raises(ValueError, match="do not match"):
        neuron_view_html(terms)


# ----------------------------------------------------------------------------- QA and tables
def test_answer_span_is_outlined_around_exactly_its_tokens():
    tokens = ["[CLS]", "the", "cat", "slept", "on", "the", "mat", "[SEP]"]
    scores = np.array([0.0, 0.1, 0.2, 0.3, 0.05, 0.1, 0.6, 0.0])
    view = answer_span_html(tokens, scores, 5, 6, "answer")
    span = re.search(r'<span class="attn-answer-span"[^>]*>(.*?)</span></span>', view).group(1)
    assert re.findall(r'data-index="(\d+)"', span) == ["5", "6"]
    assert ">the<" in span and span.endswith(">mat") and ">slept<" not in span
    top = np.round(np.array(colormaps["Oranges"](0.75)[:3]) * 255).astype(int)
    assert 'data-index="6" data-score="0.6"' in view and "rgb({}, {}, {})".format(*top) in view
    assert "attn-legend" in view
    with pytest.raises(ValueError, match="outside the 8 tokens"):
        answer_span_html(tokens, scores, 6, 8)


def test_numbers_table_shows_only_the_first_rows_of_big_inputs():
    matrix = np.arange(300 * 3, dtype=float).reshape(300, 3) / 7
    view = numbers_table_html(matrix, decimals=3)
    assert "first 20 of 300 rows" in view and "columns" not in view
    assert view.count("<tr>") == 20
    assert ">0.143<" in view and f">{matrix[19, 2]:.3f}<" in view and f">{matrix[20, 0]:.3f}<" not in view
    small = numbers_table_html(np.eye(2))
    assert "first" not in small and small.count("<tr>") == 2
    wide = numbers_table_html(np.zeros((2, 50)))
    assert "first 20 of 50 columns" in wide and wide.count("<td") == 40


def test_payload_json_is_valid_and_ascii():
    view = heatmap_html(np.eye(2), ["é", "\ud800"], ["日本", "b"])  # a lone surrogate must not break encoding
    text = html.unescape(re.search(r'data-attn-payload="([^"]*)"', view).group(1))
    assert text.isascii() and json.loads(text)["k"] == ["日本", "b"]
    view.encode("utf-8")


def test_payload_json_fast_path_reads_back_as_the_standard_librarys(monkeypatch):
    """orjson (where installed) and json give the same values, both ASCII only: non-ASCII, a
    character beyond U+FFFF, quotes and control characters escaped; a lone surrogate still works."""
    pytest.importorskip("orjson")
    from attn_demos.render.interactive import embed

    payload = {"labels": ["é", "日本", "🙂", 'say "hi"', "tab\there", "\x7f", "▁word"], "values": list(range(-3, 500)),
               "cells": [1, None, 3], "nested": {"scale": 1000, "ratio": 0.25}}
    fast = embed.payload_json(payload)
    monkeypatch.setattr(embed, "orjson", None)
    slow = embed.payload_json(payload)
    assert fast.isascii() and slow.isascii()
    assert json.loads(fast) == json.loads(slow) == payload
    assert "\\ud83d\\ude42" in fast  # 🙂 as a surrogate pair, as json.dumps writes it


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_payload_json_refuses_a_non_finite_float_with_or_without_orjson(monkeypatch, bad):
    from attn_demos.render.interactive import embed

    with pytest.raises(ValueError):
        embed.payload_json({"nested": {"max": bad}, "labels": ["a"]})
    monkeypatch.setattr(embed, "orjson", None)
    with pytest.raises(ValueError):
        embed.payload_json({"nested": {"max": bad}, "labels": ["a"]})
