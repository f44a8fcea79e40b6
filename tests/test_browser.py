"""A person's path through every tab in a real headless Chromium (Debian's, driven by playwright):
fill the input, click, wait, and check that the picture and the token labels or patches are on
the page. Screenshots are saved under artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def page(browser, app_server):
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(app_server[1], wait_until="load")
    page.get_by_role("tab", name="Basics").wait_for(timeout=WAIT_MS)
    yield page
    page.close()


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _wait_for_badge(page, prefix: str) -> str:
    badge = page.locator(f"#{prefix}-badge")
    badge.get_by_text("recomputed from weights").wait_for(timeout=WAIT_MS)
    return badge.inner_text()


def _shot(page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def _status(page, prefix: str, fragment: str) -> str:
    page.wait_for_function(
        "([id, text]) => document.getElementById(id).innerText.includes(text)", arg=[f"{prefix}-status", fragment],
        timeout=WAIT_MS,
    )
    return page.locator(f"#{prefix}-status").inner_text()


def _dropdown_value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input").first.input_value()


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator(f'#{elem_id} [role=option][aria-label="{option}"]').first.click()


def _image_loaded(page, selector: str) -> None:
    image = page.locator(f"{selector} img").first
    image.wait_for(timeout=WAIT_MS)
    assert page.evaluate("(el) => el.complete && el.naturalWidth > 50", image.element_handle())


def _view_drawn(page, selector: str) -> None:
    """An interactive view (render/interactive) drawn by the page's script."""
    page.locator(f"{selector} .attn-view.attn-ready").first.wait_for(timeout=WAIT_MS)


def test_basics_tab(page):
    _open_tab(page, "Basics")
    _view_drawn(page, "#basics-heatmap")  # the seed example is on screen before any click
    # Swap the query's components: the scores become [0, 1/√3], so the seed's weights swap too.
    page.locator("#basics-query textarea").fill("[[0, 1, 1]]")
    page.locator("#basics-run").click()
    page.wait_for_function(  # the seed's row reads 0.640457 0.359543: wait for the swapped one
        "() => { const r = document.querySelectorAll('#basics-steps tr.attn-paired-row')[1];"
        " return r && r.innerText.trim().split(/\\s+/)[1] === '0.359543'; }",
        timeout=WAIT_MS,
    )
    weights = page.locator("#basics-steps tr.attn-paired-row").nth(1).inner_text().split()  # step 2's row q0
    assert weights[:5] == ["q0", "0.359543", "0.640457", "0.359543", "0.640457"]  # torch, then numpy
    scores = page.locator("#basics-steps tr.attn-paired-row").first.inner_text().split()
    assert scores[1:3] == ["0.000000", "0.577350"]
    assert "agree" in page.locator("#basics-status").inner_text()
    _shot(page, "basics")


def test_basics_tab_shows_a_clear_error(page):
    _open_tab(page, "Basics")
    page.locator("#basics-query textarea").fill("[[1, 2]]")
    page.locator("#basics-run").click()
    page.locator("#basics-status").get_by_text("d_k").wait_for(timeout=WAIT_MS)
    assert "Traceback" not in page.content()
    page.locator("#basics-query textarea").fill("[[1, 0, 1]]")


def test_explorer_tab(page):
    _open_tab(page, "Explorer")
    page.locator("#explore-text textarea").fill("Attention is all you need.")
    page.locator("#explore-run").click()
    # [CLS] attention is all you need . [SEP]: 8 tokens of all-MiniLM-L6-v2's WordPiece vocabulary (the
    # page opened on its first example's result, so wait for this run's tokens, not for any badge)
    page.wait_for_function(
        "() => document.querySelectorAll('#explore-received .attn-token').length === 8", timeout=WAIT_MS
    )
    assert "✓" in _wait_for_badge(page, "explore")
    _view_drawn(page, "#explore-heatmap")
    _view_drawn(page, "#explore-grid")
    page.get_by_text("Attention flow (max-flow").click()
    page.locator("#explore-flow-run").click()
    page.locator("#explore-flow .attn-token").first.wait_for(timeout=WAIT_MS)
    assert page.locator("#explore-flow .attn-token").count() == 8
    _shot(page, "explorer")


def test_translation_tab(page):
    _open_tab(page, "Translation")
    page.locator("#translate-text textarea").fill("The cat sat on the mat.")
    page.locator("#translate-run").click()
    assert "✓" in _wait_for_badge(page, "translate")
    _view_drawn(page, "#translate-heatmap")
    # the tiny Marian's word-level tokenizer: the cat sat on the mat . </s>
    assert page.locator("#translate-highlight .attn-token").count() == 8
    _shot(page, "translation")


def test_question_answering_tab(page, checkpoints):
    from transformers import AutoTokenizer

    context_tokens = AutoTokenizer.from_pretrained(checkpoints["distilbert"]).tokenize("The cat slept on the warm windowsill.")
    _open_tab(page, "Question answering")
    page.locator("#answer-question textarea").fill("Where did the cat sleep?")
    page.locator("#answer-context textarea").fill("The cat slept on the warm windowsill.")
    page.locator("#answer-run").click()
    assert "✓" in _wait_for_badge(page, "answer")
    assert page.locator("#answer-highlight .attn-token").count() == len(context_tokens)
    outlined = page.locator("#answer-highlight .attn-answer-span")  # the answer, outlined in the context
    if page.locator("#answer-answer").inner_text().startswith("No answer"):
        assert outlined.count() == 0
    else:
        assert outlined.count() == 1 and outlined.locator(".attn-token").count() >= 1
    _view_drawn(page, "#answer-heatmap")
    _shot(page, "question_answering")


def test_summarization_tab(page, checkpoints):
    from transformers import AutoTokenizer

    article = "Heavy rain caused the river to rise overnight."
    source = AutoTokenizer.from_pretrained(checkpoints["bart"])(article)["input_ids"]  # <s> pieces </s>
    _open_tab(page, "Summarization")
    page.locator("#summarize-text textarea").fill(article)
    page.locator("#summarize-run").click()
    assert "✓" in _wait_for_badge(page, "summarize")
    _view_drawn(page, "#summarize-heatmap")
    assert page.locator("#summarize-highlight .attn-token").count() == len(source)
    _shot(page, "summarization")


def test_image_tab(page):
    _open_tab(page, "Image patches")
    page.locator("#image-run").click()
    assert "✓" in _wait_for_badge(page, "image")
    _view_drawn(page, "#image-overlay")
    _image_loaded(page, "#image-rollout")
    assert page.locator("#image-patches td.attn-patch").count() == 16  # the tiny ViT's 4 × 4 grid
    for scale in ("#image-overlay", "#image-rollout-scale"):  # a colour scale with each overlay
        assert page.locator(f"{scale} .attn-legend-bar").count() == 1, scale
    page.get_by_text("Attention flow into [CLS]").click()
    page.locator("#image-flow-run").click()
    _image_loaded(page, "#image-flow")
    page.locator("#image-flow-scale .attn-legend-bar").wait_for(timeout=WAIT_MS)
    _shot(page, "image_patches")


# ---------------------------------------------------------------- what a new user hit (issue 8) --


def test_a_failed_run_keeps_layer_and_head_and_the_next_run_works(page):
    """Explorer and QA: an empty run, then a valid one, shows the badge ✓ (dropdowns not blanked)."""
    _open_tab(page, "Explorer")
    page.locator("#explore-text textarea").fill("The cat sat on the mat.")
    page.locator("#explore-run").click()
    _wait_for_badge(page, "explore")
    _choose(page, "explore-layer", "3")
    page.locator("#explore-badge").get_by_text("✓").wait_for(timeout=WAIT_MS)
    page.locator("#explore-text textarea").fill("")
    page.locator("#explore-run").click()
    assert "is empty" in _status(page, "explore", "⚠️")
    assert page.locator("#explore-badge").inner_text().strip() == ""  # the old result is cleared
    assert _dropdown_value(page, "explore-layer") == "3" and _dropdown_value(page, "explore-head") == "mean"
    page.locator("#explore-text textarea").fill("The dog barked.")
    page.locator("#explore-run").click()
    assert "✓" in _wait_for_badge(page, "explore")
    assert _dropdown_value(page, "explore-layer") == "3"  # the run drew the layer the control shows

    _open_tab(page, "Question answering")
    page.locator("#answer-context textarea").fill("")
    page.locator("#answer-run").click()
    assert "context is empty" in _status(page, "answer", "⚠️")
    assert _dropdown_value(page, "answer-layer") == "mean" and _dropdown_value(page, "answer-head") == "mean"
    page.locator("#answer-context textarea").fill("The cat slept on the warm windowsill.")
    page.locator("#answer-run").click()
    assert "✓" in _wait_for_badge(page, "answer")


def test_export_on_a_long_input_shows_a_short_preview_and_named_files(page):
    _open_tab(page, "Explorer")
    long_text = " ".join(["attention"] * 348)  # [CLS] + 348 + [SEP] = 350 MiniLM tokens
    page.locator("#explore-text textarea").fill(long_text)
    page.locator("#explore-run").click()
    _wait_for_badge(page, "explore")
    page.locator("#explore-export-accordion").get_by_text("Export", exact=True).first.click()
    _choose(page, "explore-layer", "2")
    page.wait_for_function(
        "() => document.getElementById('explore-numbers').innerText.includes('layer 2')", timeout=WAIT_MS
    )
    shown = page.locator("#explore-numbers").inner_text()
    assert "350" in shown  # the shape
    assert shown.count("0.") <= 8 * 8 + 8, "the page's JSON must hold a preview, not the 350 × 350 matrix"
    assert "press Export" in shown
    page.locator("#explore-export").click()
    assert _status(page, "explore", "Exported.")
    link = page.locator("#explore-json a[download]").first
    link.wait_for(timeout=WAIT_MS)
    assert (link.get_attribute("href") or "").endswith("/explore-layer2-mean-heads.json")
    _shot(page, "explorer_export")


def test_a_corrupt_image_gets_one_message_and_clears_the_old_result(page, tmp_path):
    _open_tab(page, "Image patches")
    page.locator("#image-run").click()
    _wait_for_badge(page, "image")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n certainly not an image")
    page.locator("#image-input button[aria-label=Clear]").click()
    page.locator("#image-input input[type=file]").set_input_files(str(broken))
    page.locator("#image-input [aria-label=\"broken.png\"]").first.wait_for(timeout=WAIT_MS)  # uploaded
    page.locator("#image-run").click()
    assert "The file is not a readable image" in _status(page, "image", "⚠️")
    assert page.locator("#image-overlay .attn-view").count() == 0 and page.locator("#image-badge").inner_text().strip() == ""
    assert page.locator("#image-flow img").count() == 0  # nor the flow of the previous image
    assert page.locator(".toast-body", has_text="Error").count() == 0  # no red error pills
    _shot(page, "image_corrupt_upload")


def test_rollout_disables_layer_enter_submits_and_examples_run(page):
    _open_tab(page, "Question answering")
    _choose(page, "answer-head", "rollout")
    page.wait_for_function("() => document.querySelector('#answer-layer input').disabled")
    _choose(page, "answer-head", "mean")
    page.wait_for_function("() => !document.querySelector('#answer-layer input').disabled")
    question = page.locator("#answer-question input, #answer-question textarea").first
    question.fill("Where did the cat sleep?")
    with page.expect_request(_a_run_with("Where did the cat sleep?"), timeout=WAIT_MS):  # Enter alone runs
        question.press("Enter")
    assert "✓" in _wait_for_badge(page, "answer")

    _open_tab(page, "Explorer")
    with page.expect_request(_a_run_with("Enter runs this."), timeout=WAIT_MS):
        page.locator("#explore-text textarea").fill("Enter runs this.")
        page.locator("#explore-text textarea").press("Enter")
    _wait_for_badge(page, "explore")
    from attn_demos.tasks.examples import load_examples

    example = load_examples("explore")[1]["text"]
    with page.expect_request(_a_run_with(example), timeout=WAIT_MS):  # a click on an example runs it
        page.locator("#tab-explore button.gallery-item").nth(1).click()
    assert page.locator("#explore-text textarea").input_value() == example
    assert "✓" in _wait_for_badge(page, "explore")


def _a_run_with(text: str):
    """A queued event whose inputs carry `text` (a redraw sends only the controls)."""
    import json

    def matches(request) -> bool:
        return request.method == "POST" and "/queue/join" in request.url and text in json.loads(request.post_data)["data"]

    return matches


def test_flow_accordion_gives_an_estimate_before_running(page):
    _open_tab(page, "Explorer")
    page.locator("#explore-text textarea").fill("Attention is all you need.")
    page.locator("#explore-run").click()
    _wait_for_badge(page, "explore")
    if not page.locator("#explore-flow-run").is_visible():  # the accordion may be open from an earlier test
        page.get_by_text("Attention flow (max-flow").click()
    estimate = page.locator("#explore-flow-estimate")
    estimate.get_by_text("Estimated time for 8 tokens × 6 layers").wait_for(timeout=WAIT_MS)
    assert "under a second" in estimate.inner_text()
    assert page.locator("#explore-flow-stop").is_visible()


def test_a_tab_whose_model_cannot_load_says_one_sentence_and_disables_its_button(checkpoints, page):
    """A second app whose QA model is missing: visitors see one sentence, no hint for the operator."""
    from app_server import model_settings, running_app

    with running_app(model_settings(checkpoints, answer_model="/no/such/folder")) as (_, url):
        other = page.context.browser.new_page(viewport={"width": 1280, "height": 1600})
        other.goto(url, wait_until="load")
        other.get_by_role("tab", name="Question answering").click()
        line = other.locator("#answer-model")
        line.get_by_text("not available").wait_for(timeout=WAIT_MS)
        assert line.inner_text().strip() == "⚠️ This tab's model is not available on this server."
        assert other.locator("#answer-run").is_disabled()
        assert other.locator("#answer-status").inner_text().strip() == ""  # not repeated below the button
        content = other.content()
        assert "/no/such/folder" not in content and "ATTN_DEMOS_" not in content and "--answer-model" not in content
        other.screenshot(path=str(SCREENSHOTS / "question_answering_model_unavailable.png"), full_page=True)
        other.get_by_role("tab", name="Translation").click()
        assert other.locator("#translate-run").is_enabled()  # control: a tab whose model loads
        other.close()
