"""show() in a real notebook: a notebook is executed headless (nbclient, an ipykernel), exported
to HTML (nbconvert) and opened in headless Chromium, where the views must be drawn by the script
inside the output (no server), say verified, and answer a hover and a grid click."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_browser import SCREENSHOTS  # one Chromium set-up for every browser test

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The animal didn't cross the street because it was too tired."
WAIT_MS = 30_000
KERNEL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def notebook_html(tmp_path_factory) -> Path:
    """The HTML export of a notebook that ran `show(text=TEXT)` in its own kernel."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    pytest.importorskip("ipykernel")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("from attn_demos import show"),
        nbformat.v4.new_code_cell(f"maps = show(text={TEXT!r})"),
        nbformat.v4.new_code_cell("maps.weights.shape, maps.verified"),
    ]
    nbclient.NotebookClient(
        notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}},
    ).execute()  # the kernel imports this checkout's attn_demos: its folder is the kernel's working folder
    shown = notebook.cells[1].outputs
    assert [output["output_type"] for output in shown if "text/html" in output.get("data", {})] == ["display_data"]
    assert notebook.cells[2].outputs[0]["data"]["text/plain"] == "((6, 12, 16, 16), True)"
    body, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
    path = tmp_path_factory.mktemp("notebook") / "show.html"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def page(browser, notebook_html):
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    page.route("http*://**", lambda route: route.abort())  # the export's CDN links: nothing leaves the machine
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(notebook_html.as_uri(), wait_until="load")
    page.locator('[data-attn-view="heatmap"].attn-ready').wait_for(timeout=WAIT_MS)
    yield page
    assert errors == []
    page.close()


def _painted_pixels(page) -> int:
    """Pixels of the heatmap canvas that are not the white background."""
    return page.evaluate(
        """() => { const c = document.querySelector('canvas.attn-hm-canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 740) n++;
                   return n; }"""
    )


def test_the_notebook_output_draws_a_verified_heatmap(page):
    assert _painted_pixels(page) > 10_000  # 16 × 16 cells of colour, labels
    assert "✓" in page.locator(".attn-nb-badge").inner_text()
    assert "recomputed from weights" in page.locator(".attn-panel-badge").inner_text()
    assert page.locator(".attn-nb-needs-script").first.is_hidden()  # the script ran
    for kind in ("grid", "head"):
        page.locator(f'[data-attn-view="{kind}"].attn-ready').wait_for(timeout=WAIT_MS)
    page.locator(".attn-notebook").screenshot(path=str(SCREENSHOTS / "notebook-show.png"))


def test_hovering_the_heatmap_shows_a_value(page):
    box = page.locator("canvas.attn-hm-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 8, box["y"] + box["height"] - 8)  # the last row, last column
    tip = page.locator(".attn-tooltip")
    tip.wait_for(state="visible", timeout=WAIT_MS)
    assert tip.inner_text().startswith("[SEP] → [SEP]: 0.")


def test_a_grid_click_redraws_the_heatmap_and_head_view_without_a_server(page):
    page.locator('button.attn-cell[data-layer="3"][data-head="5"]').click()
    page.locator('[data-attn-view="heatmap"] > .attn-title').get_by_text("layer 3, head 5").wait_for(timeout=WAIT_MS)
    page.locator('[data-attn-view="head"].attn-ready select.attn-layer').first.wait_for(timeout=WAIT_MS)
    assert page.locator('[data-attn-view="head"] select.attn-layer').input_value() == "3"
    assert page.locator("select.attn-panel-layer").input_value() == "3"
    assert page.locator("select.attn-panel-head").input_value() == "5"
    assert "✓" in page.locator(".attn-panel-badge").inner_text()
    assert _painted_pixels(page) > 10_000
    page.locator("select.attn-panel-head").select_option("mean")
    page.locator('[data-attn-view="heatmap"] > .attn-title').get_by_text("layer 3, mean of heads").wait_for(timeout=WAIT_MS)
