"""The combined app on 127.0.0.1, every endpoint called with gradio_client as an API user would."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attn_demos.render.interactive import read_payload
from attn_demos.ui import explorer, wiring

BADGE = re.compile(r"recomputed from weights: max \|Δ\| ([0-9.e+-]+) ✓")


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    _, url = app_server
    return Client(url, verbose=False)


def _outputs(client, api_name: str) -> list[str]:
    """Names of an endpoint's outputs, in order, from the app's own API description."""
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"][f"/{api_name}"]
    return [r["label"] for r in info["returns"]]


def _token_spans(html: str) -> int:
    return len(re.findall(r'class="attn-token[ "]', html))


def _badge_error(text: str) -> float:
    match = BADGE.search(text)
    assert match, f"no verified badge in {text!r}"
    return float(match.group(1))


def test_every_endpoint_has_its_stable_name(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/basics", "/explore", "/translate", "/answer", "/summarize", "/classify_image"} <= names


def test_basics_endpoint_returns_the_seed_numbers(client):
    status, steps, heatmap, numbers = client.predict("[[1,0,1]]", "[[1,0,0],[0,1,0]]", "[[1,2],[3,4]]", api_name="/basics")
    assert "agree" in status
    assert numbers["weights_corner"][0][0] == pytest.approx(0.640457, abs=1e-6)
    assert "0.640457" in steps
    shown = read_payload(heatmap)  # the interactive heatmap's numbers, 6 places
    assert shown["m"][:2] == [640457, 359543] and shown["decimals"] == 6


def test_basics_endpoint_reports_bad_shapes_in_the_status(client):
    status, *_ = client.predict("[[1,2]]", "[[1,0,0]]", "[[1]]", api_name="/basics")
    assert status.startswith("⚠️") and "d_k" in status


def test_explore_endpoint_on_embedded_minilm(client):
    values = client.predict("Attention is all you need.", 2, "mean", False, "", api_name="/explore")
    names = wiring.api_outputs(explorer.RUN_OUTPUTS)
    out = dict(zip(names, values))
    assert _badge_error(out["badge"]) <= 1e-5
    preview = out["numbers"]
    assert preview["query_tokens"][0] == "[CLS]" and preview["shape"] == [8, 8]
    assert out["png"] is None and out["json"] is None  # files only when asked (Export)
    assert read_payload(out["heatmap"])["q"][0] == "[CLS]" and len(read_payload(out["grid"])["layers"]) == 6
    assert 'data-attn-view="head"' in out["head_view"] and out["query"] is not None


def test_every_run_endpoint_names_its_outputs_and_the_badge_is_one(client):
    for api_name in ("basics", "explore", "translate", "answer", "summarize", "classify_image"):
        names = _outputs(client, api_name)
        assert not [n for n in names if n.startswith("value_")], (api_name, names)
        assert "status" in names, api_name
        if api_name != "basics":
            assert "badge" in names and "numbers" in names, (api_name, names)


def test_explore_accepts_every_layer_of_the_configured_model_before_any_browser_ran(client):
    """all-MiniLM-L6-v2 has 6 layers and 12 heads: layer 5 / head 11 are valid, 6 is not."""
    names = _outputs(client, "explore")
    out = dict(zip(names, client.predict("the cat sat", 5, 11, False, "", api_name="/explore")))
    assert _badge_error(out["badge"]) <= 1e-5
    assert "layer 5, head 11" in out["numbers"]["title"]
    out = dict(zip(names, client.predict("the cat sat", 6, "mean", False, "", api_name="/explore")))
    assert out["status"] == "⚠️ layer 6 does not exist: the model has layers 0–5"


def test_export_writes_named_files_with_every_number_and_how_they_were_chosen(client):
    text = "Attention is all you need."
    client.predict(text, 3, 5, False, "", api_name="/explore")
    status, png, json_path = client.predict(3, 5, False, api_name="/explore_export")
    assert status == "Exported."
    assert Path(png).name == "explore-layer3-head5.png" and Path(json_path).name == "explore-layer3-head5.json"
    exported = json.loads(Path(json_path).read_text())
    assert exported["layer"] == 3 and exported["head"] == 5 and exported["aggregation"] == "one layer, one head"
    assert exported["input_text"] == text and exported["model"] == "all-MiniLM-L6-v2 (embedded)"
    tokens = exported["query_tokens"]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(exported["matrix"]) == len(tokens)
    np.testing.assert_allclose(np.sum(exported["matrix"], axis=1), 1.0, atol=1e-5)  # every row, in full
    assert Image.open(png).format == "PNG"


def test_translate_endpoint(client):
    values = client.predict("The cat sat on the mat.", "mean", "mean", False, 2, "", api_name="/translate")
    names = _outputs(client, "translate")
    assert len(values) == len(names)
    by_type = {type(v).__name__ for v in values}
    assert "str" in by_type
    badge = next(v for v in values if isinstance(v, str) and "recomputed from weights" in v)
    assert _badge_error(badge) <= 1e-5
    highlight = next(v for v in values if isinstance(v, str) and "attn-token" in v)
    assert _token_spans(highlight) == len(["the", "cat", "sat", "on", "the", "mat", ".", "</s>"])


def test_answer_endpoint(client, checkpoints):
    from transformers import AutoTokenizer

    pieces = AutoTokenizer.from_pretrained(checkpoints["distilbert"]).tokenize("The cat slept on the warm windowsill.")
    values = client.predict(
        "Where did the cat sleep?", "The cat slept on the warm windowsill.", "mean", "mean", "answer", "",
        api_name="/answer",
    )
    badge = next(v for v in values if isinstance(v, str) and "recomputed from weights" in v)
    assert _badge_error(badge) <= 1e-5
    context_html = next(v for v in values if isinstance(v, str) and "attn-token" in v)
    assert _token_spans(context_html) == len(pieces)  # one span per context piece of the checkpoint's WordPiece


def test_summarize_endpoint(client):
    values = client.predict(
        "Heavy rain caused the river to rise by almost two metres overnight.", "mean", "mean", False, 2, "",
        api_name="/summarize",
    )
    badge = next(v for v in values if isinstance(v, str) and "recomputed from weights" in v)
    assert _badge_error(badge) <= 1e-5


def test_classify_image_endpoint(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "square.png"
    Image.new("RGB", (64, 64), "red").save(path)
    values = client.predict(handle_file(str(path)), "mean", "mean", "", api_name="/classify_image")
    labels = next(v for v in values if isinstance(v, dict) and "confidences" in v)
    assert len(labels["confidences"]) == 5
    numbers = next(v for v in values if isinstance(v, dict) and "grid" in v)
    assert numbers["grid"] == [4, 4] and len(numbers["cls_to_patches"]) == 4
    badge = next(v for v in values if isinstance(v, str) and "recomputed from weights" in v)
    assert _badge_error(badge) <= 1e-5


def test_calls_side_by_side_on_one_client_each_get_their_own_answer(client, monkeypatch):
    """The page drops an older run that finishes after a newer one (run_order.Results); a client
    that sends calls side by side in one session still gets every answer."""
    import threading

    held, entered = threading.Event(), threading.Event()
    draw = explorer.heatmap_html

    def held_draw(matrix, query_labels, *args, **kwargs):
        if "slow" in query_labels and not entered.is_set():
            entered.set()
            assert held.wait(30)
        return draw(matrix, query_labels, *args, **kwargs)

    monkeypatch.setattr(explorer, "heatmap_html", held_draw)
    received = _outputs(client, "explore").index("received")
    older = client.submit("slow is the older call.", 0, "mean", False, "", api_name="/explore")
    assert entered.wait(30)
    newer = client.predict("The newer call.", 0, "mean", False, "", api_name="/explore")
    held.set()
    answers = (older.result(timeout=60)[received], newer[received])
    assert "older" in answers[0] and "newer" in answers[1]
