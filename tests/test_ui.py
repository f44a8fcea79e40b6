"""The ui package without a browser: each tab's handlers, the shared wiring, the layer rules, the
model's name on screen, exports on request, and the flow estimate."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attn_demos.core.pooling import display_tokens
from attn_demos.render.interactive import read_payload
from attn_demos.ui import explorer, images, qa, seq2seq, wiring
from attn_demos.ui.common import numbers_preview

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attn_demos"


@pytest.fixture
def configured(use_settings, checkpoints):
    """Every tab on a tiny random checkpoint (the Explorer on BERT); visitors may not name models."""
    from app_server import model_settings

    use_settings(**model_settings(checkpoints, explore_model=str(checkpoints["bert"])))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


# ---------------------------------------------------------------- layers ------------------------


def test_render_imports_neither_tasks_nor_ui():
    files = list((PACKAGE / "render").rglob("*.py"))
    assert len(files) >= 6
    for path in files:
        bad = {name for name in _imports(path) if name.startswith(("attn_demos.tasks", "attn_demos.ui"))}
        assert not bad, (path, bad)


def test_the_import_scan_sees_a_violation(tmp_path):
    """Control: the same scan flags a render module that imports a task."""
    path = tmp_path / "bad.py"
    path.write_text("from attn_demos.tasks.explorer import explore\nimport attn_demos.ui.common\n")
    assert {"attn_demos.tasks.explorer", "attn_demos.ui.common"} <= _imports(path)


def test_tasks_never_import_ui_and_nothing_edits_sys_path():
    """Nothing but apps/app.py: Spaces runs that file by its path with the project not installed,
    so it puts the repository root on sys.path (its docstring; test_spaces_app_starts_from_a_clone)."""
    for path in (PACKAGE / "tasks").rglob("*.py"):
        assert not {n for n in _imports(path) if n.startswith("attn_demos.ui")}, path
    sources = [*PACKAGE.rglob("*.py"), *(ROOT / "apps").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    for path in sources:
        if path.name != "test_ui.py" and path != ROOT / "apps" / "app.py":  # this file names what it looks for
            text = path.read_text()
            assert "sys.path.insert" not in text and "sys.path.append" not in text, path


def test_the_spaces_entry_point_only_builds_and_launches():
    source = (ROOT / "apps" / "app.py").read_text()
    assert len(source.splitlines()) <= 40
    assert _imports(ROOT / "apps" / "app.py") == {"attn_demos.ui.app", "sys", "pathlib"}
    assert [p.name for p in (ROOT / "apps").glob("*.py")] == ["app.py"]


# ---------------------------------------------------------------- blank controls (issue 8.1) ----


RUNS = {
    "explore": lambda layer, head: explorer.explore("the cat sat", layer, head, False, ""),
    "translate": lambda layer, head: seq2seq.translate("the cat sat", layer, head, False, 1, ""),
    "summarize": lambda layer, head: seq2seq.summarize("the cat sat", layer, head, False, 1, ""),
    "answer": lambda layer, head: qa.answer("Where did the cat sleep?", "The cat slept.", layer, head, "answer", ""),
    "classify_image": lambda layer, head: images.classify_image(Image.new("RGB", (32, 32), "red"), layer, head, ""),
}


@pytest.mark.parametrize("tab", RUNS)
@pytest.mark.parametrize("blank", [None, ""])
def test_a_blank_layer_or_head_is_the_tabs_default(configured, tab, blank):
    """What a browser sends after a dropdown went blank: the run draws the default view."""
    out = RUNS[tab](blank, blank)
    default = RUNS[tab](explorer.DEFAULT_LAYER if tab == "explore" else "mean", "mean")
    assert out["badge"].endswith("✓"), out.get("status")
    assert out["layers"].selected == default["layers"].selected and out["heads"].selected == "mean"
    if "numbers" in out and "title" in out["numbers"]:
        assert out["numbers"]["title"] == default["numbers"]["title"]


def test_redraws_treat_blank_controls_as_defaults(configured):
    result = explorer.explore("the cat sat", 0, "mean", False, "")["state"]
    assert explorer.redraw(result, None, None, False)["numbers"]["title"] == result.view(0, "mean").title
    translated = seq2seq.translate("the cat sat", "mean", "mean", False, 1, "")["state"]
    assert seq2seq.redraw(translated, "", None, False, None)["badge"].endswith("✓")


def test_a_failed_run_keeps_the_controls_and_clears_the_result():
    def failing(text, layer, head):
        raise ValueError("the text is empty: type something first")

    values = dict(zip(explorer.RUN_OUTPUTS, wiring.handler(failing, explorer.RUN_OUTPUTS)("", 0, "mean")))
    assert values["status"] == "⚠️ the text is empty: type something first"
    skipped = type(wiring.gr.skip())
    for name in ("layers", "heads", "flow_tokens"):
        assert isinstance(values[name], skipped), name  # the dropdowns keep their values
    for name in ("state", "badge", "heatmap", "numbers", "png", "json", "grid"):
        assert values[name] is None, name  # the old result is gone


# ---------------------------------------------------------------- the model's name (8.4, 8.6) ----


def test_display_name_never_shows_a_path(minilm_path, checkpoints):
    from attn_demos.tasks.registry import EMBEDDED_MINILM, display_name

    assert display_name(EMBEDDED_MINILM) == "all-MiniLM-L6-v2 (embedded)"
    assert display_name(str(minilm_path)) == "all-MiniLM-L6-v2 (embedded)"
    assert display_name(str(checkpoints["bert"])) == "bert"
    assert display_name(str(checkpoints["bert"]) + "/") == "bert"
    assert display_name("Helsinki-NLP/opus-mt-en-de") == "Helsinki-NLP/opus-mt-en-de"


def test_the_explorer_names_its_model_once_and_by_name(use_settings, minilm_path):
    from attn_demos.tasks.registry import model_status

    use_settings(explore_model=None)
    ok, line = model_status("explore")
    assert ok and line == "Model: `all-MiniLM-L6-v2 (embedded)`"
    out = explorer.explore("the cat sat", 0, "mean", False, "")
    assert "Model" not in out["status"] and str(minilm_path) not in json.dumps(out["numbers"])
    exported = json.loads(Path(explorer.export(out["state"], out["inputs"], 0, "mean", False)["json"]).read_text())
    assert exported["model"] == "all-MiniLM-L6-v2 (embedded)"
    assert str(minilm_path) not in json.dumps(exported) and "site-packages" not in json.dumps(exported)


def test_a_tab_whose_model_cannot_load_gives_one_sentence_and_logs_the_hint(use_settings, caplog):
    from attn_demos.errors import ModelLoadError
    from attn_demos.tasks.registry import UNAVAILABLE, model_status
    from attn_demos.tasks.seq2seq import translate

    use_settings(translate_model="/no/such/folder")
    with caplog.at_level(logging.WARNING, logger="attn_demos.tasks.registry"):
        ok, line = model_status("translate")
        with pytest.raises(ModelLoadError) as caught:
            translate("hello")
    assert not ok and line == f"⚠️ {UNAVAILABLE}"
    assert str(caught.value) == UNAVAILABLE and "/no/such" not in str(caught.value)
    logged = caplog.text
    assert "no such folder" in logged and "ATTN_DEMOS_TRANSLATE_MODEL=" in logged and "--translate-model" in logged


def test_a_tab_whose_model_cannot_load_has_its_button_disabled(use_settings, checkpoints):
    import gradio as gr

    use_settings(allow_user_models=False, answer_model="/no/such/folder", translate_model=str(checkpoints["marian"]))
    with gr.Blocks() as blocks:
        qa.build()
        seq2seq.build("translate")
    by_id = {getattr(b, "elem_id", None): b for b in blocks.blocks.values()}
    assert by_id["answer-run"].interactive is False
    assert by_id["translate-run"].interactive is not False  # control: a loadable model keeps its button
    assert by_id["answer-model"].value == f"⚠️ {qa_unavailable()}"


def qa_unavailable() -> str:
    from attn_demos.tasks.registry import UNAVAILABLE

    return UNAVAILABLE


# ---------------------------------------------------------------- exports and preview (8.2) ----


def test_numbers_preview_is_short_however_long_the_input(configured):
    out = explorer.explore("the " * 350, 0, "mean", False, "")
    preview = out["numbers"]
    assert preview["shape"][0] == 128  # the tiny BERT keeps 128 of the 352 tokens
    assert len(preview["matrix_corner"]) == 8 and all(len(row) == 8 for row in preview["matrix_corner"])
    assert len(json.dumps(preview)) < 2_000
    assert out.get("png") is None and out.get("json") is None  # no files unless Export is pressed


def test_preview_corner_is_the_views_own_numbers():
    from attn_demos.tasks.views import SelectedMap

    matrix = np.arange(100, dtype=float).reshape(10, 10) / 100  # (10, 10)
    view = SelectedMap("t", matrix, [str(i) for i in range(10)], [str(i) for i in range(10)], 0.0)
    preview = numbers_preview(view)
    assert preview["matrix_corner"][7][7] == 0.77 and preview["shape"] == [10, 10]
    assert preview["query_tokens"] == [str(i) for i in range(8)]


@pytest.mark.parametrize("tab", ["translate", "summarize"])
def test_seq2seq_export_carries_the_chosen_token_and_the_input(configured, tab):
    out = seq2seq.TABS[tab].run("the cat sat", 1, 0, False, 1, "")
    files = seq2seq.export(tab, out["state"], out["inputs"], 1, 0, False, 1)
    assert Path(files["json"]).name == f"{tab}-layer1-head0.json"
    exported = json.loads(Path(files["json"]).read_text())
    result = out["state"]
    assert exported["input_text"] == "the cat sat" and exported["layer"] == 1 and exported["head"] == 0
    assert exported["chosen_token"] == {"index": 1, "token": display_tokens(result.target_tokens)[1]}
    assert exported["aggregation"] == "one layer, one head"
    assert exported["model"] == ("marian" if tab == "translate" else "bart")  # the folder's name, not its path
    np.testing.assert_allclose(exported["matrix"], result.cross_view(1, 0).matrix, atol=5.1e-7)  # 6 decimals


def test_qa_and_image_exports_say_what_they_hold(configured):
    out = qa.answer("Where did the cat sleep?", "The cat slept on the mat.", "mean", "rollout", "answer", "")
    files = qa.export(out["state"], out["inputs"], "mean", "rollout", "answer")
    exported = json.loads(Path(files["json"]).read_text())
    assert Path(files["json"]).name == "answer-rollout.json"
    assert exported["aggregation"].startswith("rollout") and exported["input_text"]["context"] == "The cat slept on the mat."
    out = images.classify_image(Image.new("RGB", (32, 32), "red"), 0, "max", "")
    files = images.export(out["state"], out["inputs"], 0, "max")
    assert Path(files["png"]).name == "classify_image-layer0-max-heads.png"
    assert json.loads(Path(files["json"]).read_text())["aggregation"] == "one layer, max over heads"


# ---------------------------------------------------------------- tokens as a person writes them


MARKERS = ("Ġ", "▁", "<0x")  # byte-level BPE's space, SentencePiece's word start, byte fallback


def _written(labels) -> bool:
    """Every label reads as text: no tokenizer marker, no WordPiece "##" before it, none empty."""
    labels = list(labels)
    return bool(labels) and all(
        label and not any(marker in label for marker in MARKERS) and not label.startswith("##") for label in labels
    )


def _options(choices) -> list[str]:
    """A token dropdown's labels without their "index: " prefix (the index keeps equal labels apart)."""
    assert [value for _, value in choices.options] == list(range(len(choices.options)))
    return [text.split(": ", 1)[1] for text, _ in choices.options]


@pytest.mark.parametrize("tab", ["translate", "summarize"])
def test_seq2seq_labels_are_text_and_only_the_export_keeps_the_pieces(configured, tab):
    """Marian (SentencePiece "▁") and BART (byte-level "Ġ"): heatmap, head view, output-token
    dropdown, neuron view and numbers preview show text; the export adds the raw pieces apart."""
    run = seq2seq.translate if tab == "translate" else seq2seq.summarize
    out = run("The town council met on Tuesday.", 1, 0, False, 1, "")
    result = out["state"]
    assert any(marker in piece for piece in result.source_tokens for marker in MARKERS)  # control: raw pieces
    heatmap, head_view = read_payload(out["heatmap"]), read_payload(out["head_view"])
    neuron = read_payload(seq2seq.neuron(result, 1, 0, 0)["neuron"])
    shown = [heatmap["q"], heatmap["k"], head_view["q"], head_view["k"], _options(out["targets"]), neuron["keys"],
             [neuron["query"]], out["numbers"]["query_tokens"], out["numbers"]["key_tokens"]]
    assert all(_written(labels) for labels in shown), shown
    assert heatmap["k"] == display_tokens(result.source_tokens)
    exported = json.loads(Path(seq2seq.export(tab, result, out["inputs"], 1, 0, False, 0)["json"]).read_text())
    assert _written(exported["key_tokens"]) and _written(exported["query_tokens"])
    assert _written([exported["chosen_token"]["token"]])
    assert exported["key_pieces"] == result.source_tokens and exported["query_pieces"] == result.target_tokens


def test_explorer_and_qa_labels_are_text_and_the_pieces_are_exported_apart(configured):
    """WordPiece ("##"): the Explorer's dropdowns, heatmap, head view and neuron view; QA's context."""
    out = explorer.explore("Tokenization splits unbelievable words", 0, 0, False, "")
    result = out["state"]
    assert any(piece.startswith("##") for piece in result.tokens)  # control: the pieces have markers
    neuron = read_payload(explorer.neuron(result, 0, 0, 2)["neuron"])
    shown = [read_payload(out["heatmap"])["q"], read_payload(out["head_view"])["k"], _options(out["query"]),
             _options(out["flow_tokens"]), neuron["keys"], [neuron["query"]], out["numbers"]["key_tokens"]]
    assert all(_written(labels) for labels in shown), shown
    exported = json.loads(Path(explorer.export(result, out["inputs"], 0, 0, False)["json"]).read_text())
    assert exported["key_tokens"] == display_tokens(result.tokens) and exported["key_pieces"] == result.tokens
    answered = qa.answer("Where did the cat sleep?", "Tokenization splits unbelievable words.", 0, 0, "answer", "")
    exported = json.loads(Path(qa.export(answered["state"], answered["inputs"], 0, 0, "answer")["json"]).read_text())
    assert any(piece.startswith("##") for piece in exported["context_pieces"])
    assert _written(exported["context_tokens"]) and _written(exported["key_tokens"])
    assert exported["context_tokens"] == display_tokens(exported["context_pieces"])


def test_generation_labels_spell_byte_fallback_characters(configured):
    """Llama-style byte fallback: 日 is three <0x..> pieces; every label and the dropdown read text."""
    from attn_demos.ui import generation

    out = generation.generate("The café sells 日本 tea.", 0, 0, 1, 3, "")
    result = out["state"]
    assert any(piece.startswith("<0x") for piece in result.key_tokens)  # control: byte pieces
    heatmap = read_payload(out["heatmap"])
    shown = [heatmap["q"], heatmap["k"], _options(out["targets"]), out["numbers"]["key_tokens"],
             [out["numbers"]["chosen_token"]["token"]]]
    assert all(_written(labels) for labels in shown), shown
    assert "日" in heatmap["k"] and "日 1/3" in heatmap["k"]
    assert "<0x" not in out["highlight"] and "▁" not in out["highlight"]  # the strip's tooltips too


def test_export_before_any_run_says_so():
    assert explorer.export(None, None, 0, "mean", False) == {"status": "Run the model first (Show attention)."}
    assert wiring.handler(explorer.export, ("status", "png"))(None, None, 0, "mean", False) == (
        "Run the model first (Show attention).", None)


# ---------------------------------------------------------------- flow estimate (8.8) -----------


def test_flow_estimate_matches_its_measured_anchors_and_grows_with_tokens():
    from attn_demos.ui.flow_estimate import flow_estimate_text, flow_seconds

    assert flow_seconds(128, 6) == pytest.approx(0.98)  # the two measured anchors (module docstring)
    assert flow_seconds(512, 6) == pytest.approx(74.0)
    assert flow_seconds(197, 12) > flow_seconds(128, 12) > flow_seconds(128, 6)
    assert "about 74 s" in flow_estimate_text(512, 6) and "under a second" in flow_estimate_text(8, 2)


def test_flow_handler_returns_the_flow_and_reports_progress(configured):
    import asyncio

    result = explorer.explore("the cat sat on the mat", 0, "mean", False, "")["state"]
    calls = []
    function = wiring.flow_handler(explorer.flow, explorer.FLOW_OUTPUTS, lambda *args: 0.01)
    status, flow_html = asyncio.run(function(None, lambda fraction, desc: calls.append((fraction, desc)), result, 2))
    assert status == "" and flow_html.count('class="attn-token ') + flow_html.count('class="attn-token"') == len(result.tokens)
    expected = result.flow_scores(2)
    shown = [float(s) for s in __import__("re").findall(r'data-score="([^"]+)"', flow_html)]
    np.testing.assert_allclose(shown, expected)


def test_gradio_sees_the_flow_progress_tracker(configured):
    import gradio as gr

    with gr.Blocks() as blocks:
        explorer.build()
        images.build()
    tracked = [fn.name for fn in blocks.fns.values() if fn.tracks_progress]
    assert sorted(tracked) == ["flow"] * 4  # the page's two flows and their API twins


def test_flow_handler_moves_a_progress_bar_and_stop_ends_the_computation():
    import asyncio
    import threading
    import time

    steps = 40
    finished, stopped = threading.Event(), threading.Event()

    def slow(value, on_progress=None, cancelled=None):
        """A flow of `steps` max-flows of 20 ms, honouring the controls as core/flow.py does."""
        for step in range(steps):
            if cancelled():
                stopped.set()
                raise RuntimeError("cancelled")
            time.sleep(0.02)
            on_progress(step + 1, steps)
        finished.set()
        return {"status": "", "flow": value}

    function = wiring.flow_handler(slow, ("status", "flow"), lambda value: 1.0)
    calls = []
    assert asyncio.run(function(None, lambda fraction, desc: calls.append((fraction, desc)), "done")) == ("", "done")
    fractions = [fraction for fraction, _ in calls]
    assert len(fractions) >= 2 and fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)
    assert any(" of 40 max-flows" in desc for _, desc in calls)  # real progress, not only the estimate

    finished.clear()

    async def stopped_early():
        task = asyncio.create_task(function(None, lambda *args, **kwargs: None, "never shown"))
        await asyncio.sleep(0.3)
        task.cancel()  # what Gradio does for cancels=[...] when Stop is pressed
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stopped_early())
    assert stopped.wait(10) and not finished.is_set()  # the computation itself stopped: the worker is free


def test_explorer_flow_reports_progress_and_stops_when_cancelled(minilm_path):
    """MiniLM's 6 layers (1 and 2 layers have closed forms, with no max-flows to count)."""
    from attn_demos.core.flow import FlowCancelled
    from attn_demos.tasks.explorer import explore as explore_text

    result = explore_text("the cat sat on the mat", source=str(minilm_path))
    seen = []
    scores = result.flow_scores(2, lambda done, total: seen.append((done, total)))
    np.testing.assert_allclose(scores, result.flow_scores(2))  # the controls change nothing else
    assert seen[-1] == (len(result.tokens), len(result.tokens)) and len(seen) == len(result.tokens)
    with pytest.raises(FlowCancelled):
        result.flow_scores(2, cancelled=lambda: True)
    with pytest.raises(FlowCancelled):  # the tab's handler passes the controls through
        explorer.flow(result, 2, cancelled=lambda: True)


def test_running_the_entry_point_builds_each_tab_once(monkeypatch):
    """apps/app.py as Spaces runs it (as a file, not __main__ here): every tab's build() runs once."""
    import runpy

    from attn_demos.ui import app

    calls = []
    monkeypatch.setattr(app, "TABS", [(title, name, lambda name=name: calls.append(name)) for title, name, _ in app.TABS])
    namespace = runpy.run_path(str(ROOT / "apps" / "app.py"), run_name="spaces_app")
    assert calls == [name for _, name, _ in app.TABS]  # each once, in order
    assert len(set(calls)) == 7 and namespace["demo"] is not None


# ---------------------------------------------------------------- interactive views (issue 9) ----


def _selection(**fields) -> str:
    return json.dumps({**fields, "n": 1, "t": 2})  # as the page writes it (with its nonce)


def test_a_grid_click_shows_that_layer_and_head_and_marks_it(configured):
    from attn_demos.render.interactive import read_payload

    result = explorer.explore("the cat sat on the mat", 0, "mean", False, "")["state"]
    out = explorer.pick(_selection(view="grid", layer=1, head=1), result, 0, "mean", False, None)
    assert out["layers"].selected == 1 and out["heads"].selected == 1
    assert "layer 1, head 1" in out["numbers"]["title"] and "layer 1, head 1" in out["heatmap"]  # the heatmap's title
    assert read_payload(out["grid"])["shown"] == [1, 1]
    shown = np.array(read_payload(out["heatmap"])["m"]).reshape(result.library.shape[2:]) / 1e6
    np.testing.assert_allclose(shown, result.library[1, 1], atol=1e-6)
    assert not np.allclose(shown, result.library[1, 0], atol=1e-3)  # control: another head


def test_the_head_view_holds_the_shown_layer_and_follows_the_layer(configured):
    """A run sends the head view of its Layer only; a Layer change or a grid click sends that
    layer's; a click on a row or a token leaves the head view (and what a person set in it) alone."""
    from attn_demos.render.interactive import read_payload

    def layer_of(html: str) -> tuple[list[str], list[int]]:
        payload = read_payload(html)
        (only,) = payload["w"]  # one layer's lines
        return payload["layers"], only["n"]  # entries per (head, query row)

    def entries(layer: int) -> list[int]:  # the weights ≥ 0.0005 of every head of `layer`, per row
        return (np.round(result.library[layer], 3) >= 0.001).sum(axis=-1).reshape(-1).tolist()

    out = explorer.explore("the cat sat on the mat", 1, "mean", False, "")
    result = out["state"]
    assert layer_of(out["head_view"]) == (["1"], entries(1))
    assert layer_of(explorer.redraw_layer(result, 0, "mean", False)["head_view"]) == (["0"], entries(0))
    grid = explorer.pick(_selection(view="grid", layer=0, head=1), result, 1, "mean", False, None)
    assert layer_of(grid["head_view"]) == (["0"], entries(0))
    assert entries(0) != entries(1)  # control: the layers' lines differ
    row = explorer.pick(_selection(view="heatmap", query=3, token="sat"), result, 1, 0, False, None)
    token = explorer.pick(_selection(view="head", query=2, token="cat"), result, 1, 0, False, None)
    assert "head_view" not in row and "head_view" not in token and "head_view" not in explorer.redraw(result, 1, 2, False)


def test_the_head_view_of_the_mean_of_layers_holds_every_layer_to_choose_from(configured):
    """Layer = mean: the head view draws one layer, so it carries every layer for its own select."""
    from attn_demos.render.interactive import read_payload

    out = explorer.explore("the cat sat on the mat", "mean", "mean", False, "")
    payload = read_payload(out["head_view"])
    assert payload["layers"] == [str(i) for i in range(out["state"].num_layers)] and len(payload["w"]) == len(payload["layers"])
    assert read_payload(explorer.redraw_layer(out["state"], 1, "mean", False)["head_view"])["layers"] == ["1"]


def test_a_heatmap_row_click_gives_the_neuron_view_of_that_cell(configured):
    from attn_demos.render.interactive import read_payload

    result = explorer.explore("the cat sat on the mat", 1, 0, False, "")["state"]
    out = explorer.pick(_selection(view="heatmap", query=3, token="sat"), result, 1, 0, False, None)
    assert out["query"].selected == 3 and read_payload(out["heatmap"])["chosen"] == 3
    terms = read_payload(out["neuron"])
    assert (terms["layer"], terms["head"]) == (1, 0)
    np.testing.assert_allclose(terms["checked_against"], result.library[1, 0, 3], atol=1e-6)
    np.testing.assert_allclose(terms["softmax"], result.library[1, 0, 3], atol=1e-5)  # recomputed from q and k
    np.testing.assert_allclose(np.array(terms["sums"]) * terms["scale"], terms["logits"], atol=1e-6)
    assert not np.allclose(terms["checked_against"], result.library[1, 0, 2], atol=1e-6)  # control: another row
    fused = explorer.pick(_selection(view="heatmap", query=3, token="sat"), result, 1, "mean", False, None)
    terms = read_payload(fused["neuron"])  # Head is mean: the head of layer 1 with the most weight from the row
    assert terms["layer"] == 1 and "the head with the most weight from this row" in fused["neuron"]
    np.testing.assert_allclose(terms["checked_against"], result.library[1, terms["head"], 3], atol=1e-6)
    assert terms["pick"] == {"layers": result.num_layers, "heads": result.num_heads, "query": 3}  # its selects
    chosen = explorer.pick(_selection(view="neuron", layer=1, head=2, query=3), result, 1, "mean", False, 3)
    assert chosen["heads"].selected == 2 and chosen["query"].selected == 3  # the neuron view's head is the tab's now
    assert read_payload(chosen["neuron"])["head"] == 2 and "layer 1, head 2" in chosen["numbers"]["title"]
    merged = explorer.pick(_selection(view="heatmap", query=1, token="the"), result, 1, 0, True, None)
    assert "Merge word pieces" in merged["neuron"]
    assert explorer.pick("not json", result, 1, 0, False, None) == {}
    from_head_view = explorer.pick(_selection(view="head", query=2, token="cat"), result, 1, 0, False, None)
    np.testing.assert_allclose(read_payload(from_head_view["neuron"])["checked_against"], result.library[1, 0, 2], atol=1e-6)
    assert explorer.pick(_selection(view="head", query=2, token="cat"), result, 1, 0, True, None) == {}


def test_the_neuron_button_and_its_errors(configured):
    result = explorer.explore("the cat sat", 0, 0, False, "")["state"]
    assert "data-attn-view=\"neuron\"" in explorer.neuron(result, 0, 0, 2)["neuron"]
    assert explorer.neuron(result, 0, 0, None)["status"].startswith("⚠️")
    assert explorer.neuron(None, 0, 0, 1)["status"] == "Run the model first (Show attention)."


def test_clicks_and_redraws_draw_no_png(configured, monkeypatch):
    """matplotlib only for files: a redraw or a click must not call the PNG renderers."""
    import attn_demos.render.heatmap as png_heatmaps

    def refuse(*args, **kwargs):
        raise AssertionError("a PNG was drawn outside Export")

    for name in ("heatmap_figure", "heatmap_image", "head_grid_image"):
        monkeypatch.setattr(png_heatmaps, name, refuse)
    for module in (explorer, qa, seq2seq):
        monkeypatch.setattr(module, "heatmap_image", refuse)
    run = explorer.explore("the cat sat", 0, 0, False, "")
    assert "⚠️" not in (run["status"] or "")
    result = run["state"]
    for out in (explorer.redraw(result, 1, 1, False, 2), explorer.pick(_selection(view="grid", layer=0, head=1), result, 0, 0, False)):
        assert "data-attn-view" in out["heatmap"]
    translated = seq2seq.translate("the cat sat", "mean", "mean", False, 1, "")
    assert "data-attn-view" in translated["heatmap"] and "data-attn-view" in translated["head_view"]
    answered = qa.answer("Where did the cat sleep?", "The cat slept on the mat.", "mean", "mean", "answer", "")
    assert "data-attn-view" in answered["heatmap"]
    from attn_demos.ui import generation

    monkeypatch.setattr(generation, "heatmap_image", refuse)
    generated = generation.generate("the cat sat", "mean", "mean", 1, 4, "")
    assert "⚠️" not in (generated["status"] or "") and "data-attn-view" in generated["heatmap"]
    assert "data-attn-view" in generation.redraw(generated["state"], 0, 0, 1)["heatmap"]
    with pytest.raises(AssertionError, match="outside Export"):  # control: Export does draw one
        explorer.export(result, {"text": "the cat sat"}, 0, 0, False)


def test_a_translation_row_click_gives_the_cross_attention_neuron_view(configured):
    from attn_demos.render.interactive import read_payload

    result = seq2seq.translate("the cat sat on the mat", 1, 1, False, 2, "")["state"]
    out = seq2seq.pick("translate", _selection(view="heatmap", query=2, token="x"), result, 1, 1, False, 0)
    assert out["targets"].selected == 2 and read_payload(out["heatmap"])["chosen"] == 2
    terms = read_payload(out["neuron"])
    np.testing.assert_allclose(terms["checked_against"], result.cross[1, 1, 2], atol=1e-6)  # generate's row, as shown
    assert not np.allclose(terms["checked_against"], result.cross[1, 1, 3], atol=1e-6)  # control: the next row
    fused = seq2seq.neuron(result, "mean", "mean", 2)["neuron"]  # the sharpest head of any layer, said in its title
    assert "the head with the most weight from this row" in fused and read_payload(fused)["pick"]["query"] == 2


def test_a_click_that_selects_nothing_leaves_the_views_as_they_are():
    def selects_nothing(selection):
        return {}

    kept = wiring.handler(selects_nothing, explorer.PICK_OUTPUTS, keep_missing=True)("not json")
    assert all(isinstance(v, type(wiring.gr.skip())) for v in kept)
    cleared = dict(zip(explorer.PICK_OUTPUTS, wiring.handler(selects_nothing, explorer.PICK_OUTPUTS)("x")))
    assert cleared["heatmap"] is None  # control: a run's handler clears what it did not set


def test_nothing_is_selected_until_a_row_is_clicked_and_the_export_agrees(configured):
    from attn_demos.render.interactive import read_payload

    out = explorer.explore("the cat sat on the mat", 0, "mean", False, "")
    result = out["state"]
    assert out["query"].selected is None and read_payload(out["heatmap"])["chosen"] is None
    assert read_payload(out["selection"])["query"] is None
    grid = explorer.pick(_selection(view="grid", layer=1, head=1), result, 0, "mean", False, out["query"].selected)
    assert read_payload(grid["heatmap"])["chosen"] is None  # a grid click selects no query
    exported = json.loads(Path(explorer.export(result, out["inputs"], 1, 1, False, None)["json"]).read_text())
    assert exported["chosen_token"] is None
    row = explorer.pick(_selection(view="heatmap", query=3, token="sat"), result, 1, 1, False, None)
    assert read_payload(row["heatmap"])["chosen"] == 3 and read_payload(row["selection"])["query"] == 3
    exported = json.loads(Path(explorer.export(result, out["inputs"], 1, 1, False, row["query"].selected)["json"]).read_text())
    assert exported["chosen_token"] == {"index": 3, "token": "sat"}


def test_qa_and_generation_get_the_grid_head_view_and_neuron_view(configured):
    from attn_demos.render.interactive import read_payload
    from attn_demos.ui import generation

    answered = qa.answer("Where did the cat sleep?", "The cat slept on the mat.", 1, 0, "answer", "")
    result = answered["state"]
    assert read_payload(answered["grid"])["shown"] == [1, 0]
    assert read_payload(answered["head_view"])["shown_heads"] == [0] and answered["chosen_row"] is None
    row = qa.pick(_selection(view="heatmap", query=4, token="x"), result, 1, 0, "answer", None)
    terms = read_payload(row["neuron"])
    assert row["chosen_row"] == 4 and (terms["layer"], terms["head"]) == (1, 0)
    np.testing.assert_allclose(terms["checked_against"], result.shown[1, 0, 4], atol=1e-6)
    np.testing.assert_allclose(terms["softmax"], result.shown[1, 0, 4], atol=1e-5)  # recomputed from q and k
    generated = generation.generate("Why is the sky blue?", 0, 1, 1, 4, "")
    run = generated["state"]
    assert read_payload(generated["grid"])["shown"] == [0, 1]
    assert read_payload(generated["head_view"])["cross"] is True  # generated tokens → the tokens they saw
    step = generation.pick(_selection(view="heatmap", query=2, token="x"), run, 0, 1, 0)
    terms = read_payload(step["neuron"])
    assert step["targets"].selected == 2 and (terms["layer"], terms["head"]) == (0, 1)
    np.testing.assert_allclose(terms["checked_against"], run.generated[0, 1, 2], atol=1e-5)  # the teacher-forced pass's row
    visible = read_payload(step["heatmap"])["visible"]
    assert visible == [len(run.prompt_tokens) + g for g in range(len(run.generated_tokens))]
