"""The Text generation tab in a real headless Chromium, on the tiny random Llama: type a prompt,
press Generate, read the continuation and the badge, pick another generated token; a failed
(empty) run followed by a valid one. Screenshot: artifacts/screenshots/text_generation.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import test_browser as browser
import transformers

pytestmark = pytest.mark.browser

PROMPT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def page(app_server):
    if not Path(browser.CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("ATTN_DEMOS_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is missing: install Debian's chromium (bash scripts/setup.sh --with-browser)")
        pytest.skip("Chromium is not installed (bash scripts/setup.sh --with-browser installs it)")
    from playwright.sync_api import sync_playwright

    browser.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _, url = app_server
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser.CHROMIUM, args=browser.FLAGS, headless=True)
        page = chromium.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Text generation").wait_for(timeout=browser.WAIT_MS)
        yield page
        chromium.close()


def _scores(page) -> list[str]:
    return page.locator("#generate-highlight .attn-token").evaluate_all("(spans) => spans.map(s => s.dataset.score)")


def _run(page, prompt: str) -> None:
    page.locator("#generate-text textarea").fill(prompt)
    page.locator("#generate-run").click()


def test_text_generation_tab(page, checkpoints):
    prompt_length = len(transformers.AutoTokenizer.from_pretrained(checkpoints["llama"])(PROMPT)["input_ids"])
    browser._open_tab(page, "Text generation")
    assert "random weights" in page.locator("#generate-model").inner_text()
    _run(page, PROMPT)
    assert "✓" in browser._wait_for_badge(page, "generate")
    assert page.locator("#generate-output textarea").input_value().strip()
    browser._image_loaded(page, "#generate-heatmap")
    assert "random weights" in page.locator("#generate-status").inner_text()
    # Generated token 0 attended to the prompt only; token 2 to the prompt and tokens 0 and 1.
    assert page.locator("#generate-highlight .attn-token").count() == prompt_length
    first = _scores(page)
    option = page.locator("#generate-target input").first
    option.click()
    third = page.locator("#generate-target [role=option]").nth(2)
    third_label = third.get_attribute("aria-label")
    assert third_label.startswith("2: ")
    third.click()
    page.locator("#generate-highlight").get_by_text("generated token 2").wait_for(timeout=browser.WAIT_MS)
    assert page.locator("#generate-highlight .attn-token").count() == prompt_length + 2
    assert _scores(page)[:prompt_length] != first  # the shading changed with the token
    assert "✓" in page.locator("#generate-badge").inner_text()
    browser._shot(page, "text_generation")


def test_a_failed_generation_then_a_valid_one(page):
    browser._open_tab(page, "Text generation")
    _run(page, PROMPT)
    browser._wait_for_badge(page, "generate")
    browser._choose(page, "generate-layer", "1")
    page.locator("#generate-badge").get_by_text("✓").wait_for(timeout=browser.WAIT_MS)
    _run(page, "")
    assert "is empty" in browser._status(page, "generate", "⚠️")
    assert page.locator("#generate-badge").inner_text().strip() == ""  # the old result is cleared
    assert browser._dropdown_value(page, "generate-layer") == "1"  # the controls keep their values
    _run(page, "the dog barked")
    assert "✓" in browser._wait_for_badge(page, "generate")
    assert browser._dropdown_value(page, "generate-layer") == "1"
    assert page.locator("#generate-highlight .attn-token").count() >= 2
