"""What a visitor sees before and just after a first click, in headless Chromium: the Explorer opens
on a verified heatmap, Basics stays a page's height at 64 × 64 inputs with every number in a
download, and Image patches previews the upload, answers a hover on the overlay with a value, takes
a clicked patch as the query and draws a legend that starts at the unchanged photo."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_browser import SCREENSHOTS, WAIT_MS  # one Chromium set-up for every browser test

pytestmark = pytest.mark.browser

SIDE = 64  # Basics: a 64 × 64 query, key and value
BASICS_MAX_HEIGHT = 2_400  # px of the Basics steps at 64 × 64: three capped tables (10,340 px before)


@pytest.fixture
def page(browser, app_server):
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_server[1], wait_until="load")
    page.get_by_role("tab", name="Basics").wait_for(timeout=WAIT_MS)
    yield page
    assert errors == []
    page.close()


def _painted(page, selector: str) -> int:
    """Pixels of a canvas that are not its white background."""
    return page.evaluate(
        """(selector) => { const c = document.querySelector(selector);
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 740) n++;
             return n; }""",
        selector,
    )


def test_the_explorer_opens_on_a_verified_heatmap_without_a_click(page):
    from attn_demos.ui.explorer import DEFAULT_TEXT

    page.get_by_role("tab", name="Explorer").click()
    page.locator("#explore-heatmap .attn-view.attn-ready").wait_for(timeout=WAIT_MS)
    assert "✓" in page.locator("#explore-badge").inner_text()
    assert page.locator("#explore-text textarea").input_value() == DEFAULT_TEXT
    assert _painted(page, "#explore-heatmap canvas.attn-hm-canvas") > 10_000
    payload = json.loads(page.locator("#explore-heatmap .attn-view").get_attribute("data-attn-payload"))
    assert payload["q"][:3] == ["[CLS]", "the", "animal"]
    page.locator("#explore-grid button.attn-cell").first.wait_for(timeout=WAIT_MS)  # every view of the run
    page.screenshot(path=str(SCREENSHOTS / "explorer-on-open.png"))


def test_basics_stays_a_page_high_at_64_by_64_and_downloads_every_number(page):
    rng = np.random.default_rng(0)
    q, k, v = (json.dumps(rng.normal(size=(SIDE, SIDE)).round(3).tolist()) for _ in range(3))
    for name, text in (("query", q), ("key", k), ("value", v)):
        page.locator(f"#basics-{name} textarea").fill(text)
    page.locator("#basics-run").click()
    page.locator("#basics-steps").get_by_text(f"… {SIDE - 10} more rows").first.wait_for(timeout=WAIT_MS)
    height = page.locator("#basics-steps").bounding_box()["height"]
    assert height <= BASICS_MAX_HEIGHT, height
    header = page.locator("#basics-steps th", has_text="row").first.bounding_box()
    assert header["height"] < 30  # "row" on one line, not "r o w"
    assert page.locator("#basics-steps tr.attn-paired-row").count() == 3 * 10  # three steps, ten rows each
    page.screenshot(path=str(SCREENSHOTS / "basics-64x64.png"), full_page=True)
    page.get_by_text("Every number").click()
    with page.expect_download(timeout=WAIT_MS) as download:
        page.locator("#basics-download-run").click()
        page.locator("#basics-download a").first.click(timeout=WAIT_MS)
    numbers = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert np.asarray(numbers["weights"]).shape == np.asarray(numbers["numpy_weights"]).shape == (SIDE, SIDE)
    np.testing.assert_allclose(numbers["weights"], numbers["numpy_weights"], atol=1e-12)


def test_image_patches_preview_hover_click_and_legend(page, tmp_path):
    page.get_by_role("tab", name="Image patches").click()
    picture = tmp_path / "stripes.png"
    stripes = np.zeros((96, 128, 3), dtype=np.uint8)
    stripes[:, ::16] = 255
    Image.fromarray(stripes).save(picture)
    page.locator("#image-input button[aria-label=Clear]").click()
    page.locator("#image-input input[type=file]").set_input_files(str(picture))
    preview = page.locator("#image-preview img").first
    preview.wait_for(timeout=WAIT_MS)  # shown before Classify
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 128", arg=preview.element_handle(), timeout=WAIT_MS)
    assert page.locator("#image-badge").inner_text().strip() == ""

    page.locator("#image-run").click()
    page.locator("#image-badge").get_by_text("recomputed from weights").wait_for(timeout=WAIT_MS)
    overlay = page.locator("#image-overlay .attn-view.attn-ready")
    overlay.wait_for(timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelector('#image-overlay .attn-view').dataset.drawn === '1'", timeout=WAIT_MS)
    canvas = overlay.locator("canvas")
    box = canvas.bounding_box()
    canvas.hover(position={"x": box["width"] * 0.6, "y": box["height"] * 0.3})  # the tiny ViT's 4 × 4 grid: patch 1,2
    tip = page.locator(".attn-tooltip")
    tip.wait_for(state="visible", timeout=WAIT_MS)
    assert tip.inner_text().startswith("patch 1,2: [CLS] → patch attention 0.")
    canvas.click(position={"x": box["width"] * 0.6, "y": box["height"] * 0.3})
    page.locator("#image-overlay .attn-title").get_by_text("where patch 1,2 looks").wait_for(timeout=WAIT_MS)
    assert page.locator("#image-query input").first.input_value() == "patch 1,2"
    assert "✓" in page.locator("#image-badge").inner_text()
    payload = json.loads(page.locator("#image-overlay .attn-view").get_attribute("data-attn-payload"))
    assert payload["query"] == 1 * 4 + 2

    bar = page.locator("#image-overlay .attn-legend-bar").screenshot()  # the legend, as drawn
    left = np.asarray(Image.open(io.BytesIO(bar)).convert("RGB"))[:, :3].astype(float)  # (h, 3, 3) its 0 end
    assert left.mean() > 150  # the photo's stand-in (light checks), not the colour map's black
    page.screenshot(path=str(SCREENSHOTS / "image-patch-query.png"), full_page=True)
