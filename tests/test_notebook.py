"""show() / attention_maps() without a browser: the maps it returns, what its output embeds, and
its choice of what to draw by the model and the arguments (text, translation, generation, image)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from attn_demos.errors import BadInputError
from attn_demos.notebook import MAX_EMBEDDED_VALUES, attention_maps
from attn_demos.render.interactive.embed import from_fixed_point, read_payload
from attn_demos.tasks.views import CHECK_TOLERANCE

TEXT = "The animal didn't cross the street because it was too tired."


def _panel(maps) -> dict:
    start = maps.html.index('data-attn-view="panel"')
    return read_payload(maps.html[start:])


def _embedded(maps, layer: int, head) -> np.ndarray:
    """The numbers a panel carries for one (layer, head), as the browser decodes them."""
    entry = _panel(maps)["maps"][f"{layer}:{head}"]["payload"]
    return from_fixed_point(entry["m"], entry["decimals"]).reshape(maps.weights.shape[2:])


def test_a_text_gives_every_layer_and_head_checked_and_embedded():
    maps = attention_maps(text=TEXT)  # the Explorer's model: the embedded MiniLM
    assert maps.weights.shape == (6, 12, 16, 16)
    assert maps.tokens[:3] == ["[CLS]", "the", "animal"] and maps.tokens == maps.key_tokens
    assert maps.verified and maps.max_abs_err <= CHECK_TOLERANCE
    np.testing.assert_allclose(maps.weights.sum(axis=-1), 1.0, atol=1e-5)
    panel = _panel(maps)
    assert len(panel["maps"]) == 6 * (12 + 1)  # every head of every layer, and each layer's mean
    np.testing.assert_allclose(_embedded(maps, 3, 5), maps.weights[3, 5], atol=5e-5)  # 4 places
    np.testing.assert_allclose(_embedded(maps, 2, "mean"), maps.weights[2].mean(axis=0), atol=5e-5)
    assert "✓" in panel["maps"]["3:5"]["badge"]
    assert "Every layer and head" in maps.html
    assert "all-MiniLM-L6-v2" in repr(maps) and "✓" in repr(maps)


def test_the_first_map_follows_layer_and_head_and_bad_choices_are_refused():
    maps = attention_maps(text="Attention is all you need.", layer=4, head=7)
    assert _panel(maps)["shown"] == [4, 7]
    heatmap = read_payload(maps.html[maps.html.index('data-attn-view="heatmap"'):])
    shown = from_fixed_point(heatmap["m"], heatmap["decimals"]).reshape(maps.weights.shape[2:])
    np.testing.assert_allclose(shown, maps.weights[4, 7], atol=5e-5)
    for layer, head in ((6, 0), (0, 12), (0, "max"), ("x", 0)):
        with pytest.raises(BadInputError):
            attention_maps(text="Attention is all you need.", layer=layer, head=head)
    with pytest.raises(BadInputError):
        attention_maps()


def test_a_long_text_embeds_one_layer_and_says_so():
    text = " ".join(f"word{i % 37}" for i in range(60))  # ~120 tokens: all 6 layers exceed the budget, one fits
    maps = attention_maps(text=text, layer=2)
    layers, heads, tq, tk = maps.weights.shape
    assert layers * (heads + 1) * tq * tk > MAX_EMBEDDED_VALUES >= (heads + 1) * tq * tk
    keys = set(_panel(maps)["maps"])
    assert keys == {f"2:{h}" for h in ["mean", *range(heads)]}
    assert "only layer 2" in maps.html and "show(..., layer=N)" in maps.html
    assert len(maps.html.encode()) < 6_000_000


def test_an_encoder_decoder_model_shows_its_translations_cross_attention(checkpoints):
    maps = attention_maps(str(checkpoints["marian"]), "The cat sat on the mat.")
    layers, heads, t_out, t_in = maps.weights.shape
    assert maps.kind == "cross-attention" and maps.output_text is not None
    assert len(maps.tokens) == t_out and len(maps.key_tokens) == t_in and maps.tokens != maps.key_tokens
    assert maps.verified
    assert "random weights" in maps.html  # the checkpoint's notice travels with the views
    assert 'data-attn-view="head"' in maps.html


def test_generate_shows_each_new_tokens_attention(checkpoints):
    maps = attention_maps(str(checkpoints["llama"]), "Once upon a time", generate=3)
    assert maps.kind == "attention of each generated token"
    assert maps.weights.shape[2] == len(maps.tokens) <= 3
    assert maps.verified and maps.max_abs_err <= CHECK_TOLERANCE


def test_an_image_shows_cls_over_the_patches(checkpoints):
    maps = attention_maps(str(checkpoints["vit"]), image=Image.new("RGB", (64, 48), "orange"), head=0)
    assert maps.kind == "vision self-attention" and maps.verified
    assert maps.tokens[0] == "[CLS]" and maps.labels
    overlay = read_payload(maps.html[maps.html.index('data-attn-view="overlay"'):])
    cls_row = maps.weights[0, 0, 0, 1:]  # (N,) [CLS] -> each patch
    np.testing.assert_allclose(from_fixed_point(overlay["v"], overlay["decimals"]), cls_row, atol=1e-5)
    other = _panel(maps)["maps"]["1:0"]["children"]["overlay"]  # what the overlay shows for layer 1, head 0
    np.testing.assert_allclose(from_fixed_point(other["v"], overlay["decimals"]), maps.weights[1, 0, 0, 1:], atol=1e-5)


def test_save_writes_a_page_with_the_script(tmp_path):
    maps = attention_maps(text="Attention is all you need.")
    page = maps.save(tmp_path / "view.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "window.attnViews" in page
    json.loads(json.dumps(_panel(maps)))  # the payload is plain JSON
