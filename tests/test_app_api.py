"""The combined app on 127.0.0.1, every endpoint called with gradio_client as an API user would."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from attn_demos.render.panels import explorer

from app_server import model_environment, running_app

BADGE = re.compile(r"recomputed from scratch: max \|Δ\| ([0-9.e+-]+) ✓")


@pytest.fixture(scope="module")
def client(checkpoints):
    from gradio_client import Client

    with running_app(model_environment(checkpoints)) as (_, url):
        yield Client(url, verbose=False)


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
    assert numbers["weights"][0][0] == pytest.approx(0.640457, abs=1e-6)
    assert "0.640457" in steps
    assert Image.open(heatmap).size[0] > 50


def test_basics_endpoint_reports_bad_shapes_in_the_status(client):
    status, *_ = client.predict("[[1,2]]", "[[1,0,0]]", "[[1]]", api_name="/basics")
    assert status.startswith("⚠️") and "d_k" in status


def test_explore_endpoint_on_embedded_minilm(client):
    values = client.predict("Attention is all you need.", 2, "mean", False, "", api_name="/explore")
    names = [name for name in explorer.RUN_OUTPUTS if name != "state"]  # State is not part of the API
    out = dict(zip(names, values))
    assert _badge_error(out["badge"]) <= 1e-5
    tokens = out["numbers"]["query_tokens"]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    exported = json.loads(Path(out["json"]).read_text())
    assert exported["query_tokens"] == tokens and len(exported["matrix"]) == len(tokens)
    assert Image.open(out["png"]).format == "PNG"


def test_translate_endpoint(client):
    values = client.predict("The cat sat on the mat.", "mean", "mean", False, 2, "", api_name="/translate")
    names = _outputs(client, "translate")
    assert len(values) == len(names)
    by_type = {type(v).__name__ for v in values}
    assert "str" in by_type
    badge = next(v for v in values if isinstance(v, str) and "recomputed from scratch" in v)
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
    badge = next(v for v in values if isinstance(v, str) and "recomputed from scratch" in v)
    assert _badge_error(badge) <= 1e-5
    context_html = next(v for v in values if isinstance(v, str) and "attn-token" in v)
    assert _token_spans(context_html) == len(pieces)  # one span per context piece of the checkpoint's WordPiece


def test_summarize_endpoint(client):
    values = client.predict(
        "Heavy rain caused the river to rise by almost two metres overnight.", "mean", "mean", False, 2, "",
        api_name="/summarize",
    )
    badge = next(v for v in values if isinstance(v, str) and "recomputed from scratch" in v)
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
    badge = next(v for v in values if isinstance(v, str) and "recomputed from scratch" in v)
    assert _badge_error(badge) <= 1e-5
