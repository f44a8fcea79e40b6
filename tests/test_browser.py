"""A person's path through every tab in a real headless Chromium (Debian's, driven by playwright):
fill the input, click, wait, and check that the picture and the token labels or patches are on
the page. Screenshots are saved under artifacts/screenshots/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app_server import model_environment, running_app

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
def page(checkpoints):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("ATTN_DEMOS_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is missing: install Debian's chromium (bash scripts/setup.sh --with-browser)")
        pytest.skip("Chromium is not installed (bash scripts/setup.sh --with-browser installs it)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with running_app(model_environment(checkpoints)) as (_, url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Basics").wait_for(timeout=WAIT_MS)
        yield page
        browser.close()


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _wait_for_badge(page, prefix: str) -> str:
    badge = page.locator(f"#{prefix}-badge")
    badge.get_by_text("recomputed from scratch").wait_for(timeout=WAIT_MS)
    return badge.inner_text()


def _shot(page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def _image_loaded(page, selector: str) -> None:
    image = page.locator(f"{selector} img").first
    image.wait_for(timeout=WAIT_MS)
    assert page.evaluate("(el) => el.complete && el.naturalWidth > 50", image.element_handle())


def test_basics_tab(page):
    _open_tab(page, "Basics")
    _image_loaded(page, "#basics-heatmap")  # the seed example is on screen before any click
    # Swap the query's components: the scores become [0, 1/√3], so the seed's weights swap too.
    page.locator("#basics-query textarea").fill("[[0, 1, 1]]")
    page.locator("#basics-run").click()
    page.locator("#basics-steps").get_by_text("[0.359543, 0.640457]").first.wait_for(timeout=WAIT_MS)
    steps = page.locator("#basics-steps").inner_text()
    assert "[0.000000, 0.577350]" in steps
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
    assert "✓" in _wait_for_badge(page, "explore")
    _image_loaded(page, "#explore-heatmap")
    _image_loaded(page, "#explore-grid")
    # [CLS] attention is all you need . [SEP]: 8 tokens of all-MiniLM-L6-v2's WordPiece vocabulary
    assert page.locator("#explore-received .attn-token").count() == 8
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
    _image_loaded(page, "#translate-heatmap")
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
    _image_loaded(page, "#answer-heatmap")
    _shot(page, "question_answering")


def test_summarization_tab(page, checkpoints):
    from transformers import AutoTokenizer

    article = "Heavy rain caused the river to rise overnight."
    source = AutoTokenizer.from_pretrained(checkpoints["bart"])(article)["input_ids"]  # <s> pieces </s>
    _open_tab(page, "Summarization")
    page.locator("#summarize-text textarea").fill(article)
    page.locator("#summarize-run").click()
    assert "✓" in _wait_for_badge(page, "summarize")
    _image_loaded(page, "#summarize-heatmap")
    assert page.locator("#summarize-highlight .attn-token").count() == len(source)
    _shot(page, "summarization")


def test_image_tab(page):
    _open_tab(page, "Image patches")
    page.locator("#image-run").click()
    assert "✓" in _wait_for_badge(page, "image")
    _image_loaded(page, "#image-overlay")
    _image_loaded(page, "#image-rollout")
    assert page.locator("#image-patches td.attn-patch").count() == 16  # the tiny ViT's 4 × 4 grid
    page.get_by_text("Attention flow into [CLS]").click()
    page.locator("#image-flow-run").click()
    _image_loaded(page, "#image-flow")
    _shot(page, "image_patches")
