"""The Text generation tab in a real headless Chromium, on the tiny random Llama: type a prompt,
press Generate, read the continuation and the badge, pick another generated token; a failed
(empty) run followed by a valid one. Screenshot: artifacts/screenshots/text_generation.png."""

from __future__ import annotations

import pytest
import test_browser
import transformers

pytestmark = pytest.mark.browser

PROMPT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def page(browser, app_server):
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(app_server[1], wait_until="load")
    page.get_by_role("tab", name="Text generation").wait_for(timeout=test_browser.WAIT_MS)
    yield page
    page.close()


def _scores(page) -> list[str]:
    return page.locator("#generate-highlight .attn-token").evaluate_all("(spans) => spans.map(s => s.dataset.score)")


def _run(page, prompt: str) -> None:
    page.locator("#generate-text textarea").fill(prompt)
    page.locator("#generate-run").click()


def test_text_generation_tab(page, checkpoints):
    prompt_length = len(transformers.AutoTokenizer.from_pretrained(checkpoints["llama"])(PROMPT)["input_ids"])
    test_browser._open_tab(page, "Text generation")
    assert "random weights" in page.locator("#generate-model").inner_text()
    _run(page, PROMPT)
    assert "✓" in test_browser._wait_for_badge(page, "generate")
    assert page.locator("#generate-output textarea").input_value().strip()
    test_browser._view_drawn(page, "#generate-heatmap")  # the interactive heatmap, drawn in the page
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
    page.locator("#generate-highlight").get_by_text("generated token 2").wait_for(timeout=test_browser.WAIT_MS)
    assert page.locator("#generate-highlight .attn-token").count() == prompt_length + 2
    assert _scores(page)[:prompt_length] != first  # the shading changed with the token
    assert "✓" in page.locator("#generate-badge").inner_text()
    test_browser._shot(page, "text_generation")


def test_a_failed_generation_then_a_valid_one(page):
    test_browser._open_tab(page, "Text generation")
    _run(page, PROMPT)
    test_browser._wait_for_badge(page, "generate")
    test_browser._choose(page, "generate-layer", "1")
    page.locator("#generate-heatmap").get_by_text("layer 1").first.wait_for(timeout=test_browser.WAIT_MS)  # redrawn
    _run(page, "")
    assert "is empty" in test_browser._status(page, "generate", "⚠️")
    assert page.locator("#generate-badge").inner_text().strip() == ""  # the old result is cleared
    assert test_browser._dropdown_value(page, "generate-layer") == "1"  # the controls keep their values
    _run(page, "the dog barked")
    assert "✓" in test_browser._wait_for_badge(page, "generate")
    assert test_browser._dropdown_value(page, "generate-layer") == "1"
    assert page.locator("#generate-highlight .attn-token").count() >= 2
