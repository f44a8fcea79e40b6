"""The Text generation tab: its handlers without a browser (tiny random Llama), the chat template,
bad inputs, exports, and the `generate` endpoint through gradio_client."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from attn_demos.cli import _parser
from attn_demos.core.pooling import display_tokens
from attn_demos.ui import generation, wiring

PROMPT = "the cat sat on the mat"
NEW_TOKENS = 6
BADGE = re.compile(r"recomputed from weights: max \|Δ\| ([0-9.e+-]+) ✓")
SPAN_SCORE = re.compile(r'class="attn-token[^"]*"[^>]*data-score="([^"]+)"')


@pytest.fixture
def configured(use_settings, checkpoints):
    """The tab on the tiny random Llama; visitors may not name models."""
    use_settings(allow_user_models=False, generate_model=str(checkpoints["llama"]))
    return checkpoints["llama"]


def _run(prompt=PROMPT, layer="mean", head="mean", beams=1, new_tokens=NEW_TOKENS) -> dict:
    """What the page receives: the handler through the app's wiring, keyed by output name."""
    return dict(zip(generation.RUN_OUTPUTS, wiring.handler(generation.generate, generation.RUN_OUTPUTS)(
        prompt, layer, head, beams, new_tokens, "")))


def _scores(html: str) -> list[float]:
    return [float(s) for s in SPAN_SCORE.findall(html)]


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def _badge_error(text: str) -> float:
    match = BADGE.search(text or "")
    assert match, f"no verified badge in {text!r}"
    return float(match.group(1))


# ---------------------------------------------------------------- handlers ----------------------


def test_a_run_shows_the_continuation_and_what_each_generated_token_attended_to(configured):
    out = _run()
    result = out["state"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(configured)
    prompt_length = len(tokenizer(PROMPT)["input_ids"])  # <s> and the pieces: no chat template here
    steps = len(result.generated_tokens)
    assert _badge_error(out["badge"]) <= 1e-5
    assert "random weights" in out["status"] and "Chat template" not in out["status"]
    assert out["output"] == result.output_text
    labels = display_tokens(result.generated_tokens)  # byte pieces such as <0x77> read "w"
    assert [label for label, _ in out["targets"].choices] == [f"{i}: {t}" for i, t in enumerate(labels)]
    assert out["numbers"]["shape"] == [steps, prompt_length + steps - 1]
    assert out["png"] is None and out["json"] is None  # files only on Export
    # Token 0 saw the prompt only; its shading is the recomputed (teacher-forced) attention of that
    # step, a second method, averaged over layers and heads.
    expected = result.recomputed.astype(np.float64).mean(axis=(0, 1))  # (N, P+N−1)
    first = _scores(out["highlight"])
    assert len(first) == prompt_length
    np.testing.assert_allclose(first, expected[0, :prompt_length], atol=1e-5)
    assert sum(first) == pytest.approx(1.0, abs=1e-5)
    # Another generated token, one layer and head: the prompt and the tokens before it, reshaded.
    last = steps - 1
    again = generation.redraw(result, 1, 2, last)
    shown = _scores(again["highlight"])
    assert len(shown) == prompt_length + last
    np.testing.assert_allclose(shown, result.recomputed[1, 2, last, : prompt_length + last], atol=1e-5)
    assert f"generated token {last}" in _text(again["highlight"])
    assert again["highlight"] != generation.redraw(result, 1, 2, 0)["highlight"]
    assert _badge_error(again["badge"]) <= 1e-5 and again["numbers"]["chosen_token"]["index"] == last


def test_greedy_is_the_default_and_matches_plain_generate(configured):
    out = _run(beams=generation.DEFAULT_BEAMS)
    tokenizer = transformers.AutoTokenizer.from_pretrained(configured)
    model = transformers.AutoModelForCausalLM.from_pretrained(configured).eval()
    inputs = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        plain = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS)  # (1, P+N)
    produced = plain[0, inputs["input_ids"].shape[1]:]  # (N,)
    assert out["output"] == tokenizer.decode(produced, skip_special_tokens=True)
    assert out["state"].generated_tokens == tokenizer.convert_ids_to_tokens(produced.tolist())


def test_beam_search_is_selectable_and_checked(configured):
    out = _run(beams=3)
    assert out["state"].num_beams == 3 and out["inputs"]["num_beams"] == 3
    assert _badge_error(out["badge"]) <= 1e-5


def test_the_chat_template_is_applied_when_the_tokenizer_has_one(use_settings, checkpoints, tmp_path):
    folder = tmp_path / "llama-chat"
    shutil.copytree(checkpoints["llama"], folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = (
        "{% for m in messages %}user says: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}bot says:{% endif %}"
    )
    tokenizer.save_pretrained(folder)
    use_settings(allow_user_models=False, generate_model=str(folder))
    out = _run(prompt="the cat sat")
    assert "Chat template applied." in out["status"]
    templated = "user says: the cat sat\nbot says:"  # the template above, filled in by hand
    expected = len(tokenizer(templated, add_special_tokens=False)["input_ids"])
    assert len(_scores(out["highlight"])) == expected == len(out["state"].prompt_tokens)
    shown = _text(out["highlight"])
    assert "user says" in shown and "bot says" in shown
    assert _badge_error(out["badge"]) <= 1e-5


@pytest.mark.parametrize(
    ("prompt", "beams", "new_tokens", "message"),
    [
        ("", 1, NEW_TOKENS, "The prompt is empty"),
        ("   ", 1, NEW_TOKENS, "The prompt is empty"),
        (PROMPT, 0, NEW_TOKENS, "between 1 and 8 beams"),
        (PROMPT, 9, NEW_TOKENS, "between 1 and 8 beams"),
        (PROMPT, 1, 0, "between 1 and 64 new tokens"),
        (PROMPT, 1, 65, "between 1 and 64 new tokens"),
        (PROMPT, 2.5, NEW_TOKENS, "beams must be a whole number"),
        (PROMPT, 1, "many", "max new tokens must be a whole number"),
    ],
)
def test_bad_inputs_give_one_line_and_keep_the_controls(configured, prompt, beams, new_tokens, message):
    out = _run(prompt=prompt, beams=beams, new_tokens=new_tokens)
    assert out["status"].startswith("⚠️") and message in out["status"], out["status"]
    assert "\n" not in out["status"]
    skipped = type(wiring.gr.skip())
    for name in ("layers", "heads", "targets"):
        assert isinstance(out[name], skipped), name  # dropdowns keep their values
    for name in ("state", "badge", "output", "heatmap", "highlight"):
        assert out[name] is None, name  # the old result is cleared


def test_a_too_long_prompt_is_refused_with_its_length_and_room_left(configured):
    tokenizer = transformers.AutoTokenizer.from_pretrained(configured)
    limit = min(tokenizer.model_max_length, transformers.AutoConfig.from_pretrained(configured).max_position_embeddings)
    words = limit - 40  # fits before 32 new tokens, not before 64
    prompt = " ".join(["cat"] * words)
    length = len(tokenizer(prompt)["input_ids"])
    assert limit - 64 < length <= limit - 32  # the premise of this test
    assert _badge_error(_run(prompt=prompt, new_tokens=32)["badge"]) <= 1e-5  # control: it fits
    refused = _run(prompt=prompt, new_tokens=64)["status"]
    assert refused.startswith("⚠️ The prompt is too long") and f"{length} tokens" in refused
    assert f"at most {limit - 64} before 64 new tokens" in refused and "\n" not in refused


def test_a_named_model_needs_the_operators_consent_and_must_be_decoder_only(configured, use_settings, checkpoints):
    handler = wiring.handler(generation.generate, generation.RUN_OUTPUTS)
    refused = dict(zip(generation.RUN_OUTPUTS, handler(PROMPT, "mean", "mean", 1, 2, str(checkpoints["gpt2"]))))
    assert refused["status"].startswith("⚠️") and "configured models only" in refused["status"]
    use_settings(allow_user_models=True)
    encoder = dict(zip(generation.RUN_OUTPUTS, handler(PROMPT, "mean", "mean", 1, 2, str(checkpoints["bert"]))))
    assert encoder["status"].startswith("⚠️") and "not a decoder-only language model" in encoder["status"]
    gpt2 = dict(zip(generation.RUN_OUTPUTS, handler(PROMPT, "mean", "mean", 1, 2, str(checkpoints["gpt2"]))))
    assert _badge_error(gpt2["badge"]) <= 1e-5 and "Model: `gpt2`" in gpt2["status"]  # named by folder, not path


def test_export_carries_the_prompt_the_output_and_the_chosen_token(configured):
    assert generation.export(None, None, "mean", "mean", 0)["status"] == "Run the model first (Generate)."
    out = _run()
    result = out["state"]
    files = generation.export(result, out["inputs"], 0, 1, 1)
    assert files["png"].endswith("generate-layer0-head1.png")
    payload = json.loads(Path(files["json"]).read_text())
    assert payload["tab"] == "generate" and payload["input_text"] == PROMPT
    assert payload["output_text"] == result.output_text and payload["num_beams"] == 1
    assert payload["chosen_token"] == {"index": 1, "token": display_tokens(result.generated_tokens)[1]}
    assert payload["query_pieces"] == result.generated_tokens  # the raw pieces, in their own field
    np.testing.assert_allclose(payload["matrix"], result.recomputed[0, 1], atol=1e-5)  # every number, second method


def test_launch_has_a_generate_model_flag():
    args = _parser().parse_args(["launch", "--generate-model", "/models/tiny"])
    assert args.generate_model == "/models/tiny"


# ---------------------------------------------------------------- gradio_client -----------------


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    _, url = app_server
    return Client(url, verbose=False)


def _api_run(client, prompt: str, beams) -> dict:
    values = client.predict(prompt, "mean", "mean", beams, NEW_TOKENS, "", api_name="/generate")
    names = wiring.api_outputs(generation.RUN_OUTPUTS)
    assert len(values) == len(names)
    return dict(zip(names, values))


def test_the_generate_endpoint_answers_with_named_outputs_and_a_verified_badge(client, checkpoints):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    labels = [r["label"] for r in info["/generate"]["returns"]]
    assert not [label for label in labels if label.startswith("value_")], labels
    assert {"status", "badge", "output", "highlight", "numbers"} <= set(labels)
    out = _api_run(client, PROMPT, 1)
    assert _badge_error(out["badge"]) <= 1e-5
    assert isinstance(out["output"], str) and "random weights" in out["status"]
    prompt_length = len(transformers.AutoTokenizer.from_pretrained(checkpoints["llama"])(PROMPT)["input_ids"])
    assert len(_scores(out["highlight"])) == prompt_length
    rows, columns = out["numbers"]["shape"]
    assert 1 <= rows <= NEW_TOKENS and columns == prompt_length + rows - 1
    assert out["png"] is None and out["json"] is None
    status, png, json_path = client.predict("mean", 0, 0, api_name="/generate_export")  # this session's result
    assert status == "Exported." and png.endswith(".png")
    assert json.loads(Path(json_path).read_text())["chosen_token"]["index"] == 0


def test_the_generate_endpoint_reports_bad_input_in_the_status(client):
    status = _api_run(client, "", 1)["status"]
    assert status.startswith("⚠️") and "empty" in status
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="greater than maximum value 8"):  # Gradio's slider refuses it first
        client.predict(PROMPT, "mean", "mean", 9, NEW_TOKENS, "", api_name="/generate")
