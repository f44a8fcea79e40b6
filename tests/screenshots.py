"""Screenshots of every tab at 1280 and 420 px, in light and dark mode, after each tab's first run,
for a person to look at (not a test): artifacts/screenshots/<width>-<scheme>-<tab>.png.

    PYTHONPATH=. python tests/screenshots.py [--out DIR] [--tabs explore,translate]

PYTHONPATH names the checkout whose attn_demos runs (another one: pictures from before a change);
app_server and test_browser come from this file's folder (a script's folder is first on sys.path).

The app runs as the browser tests run it (tests/app_server.py): the Explorer on the embedded
MiniLM, every other tab on a tiny random-weight checkpoint built once under artifacts/checkpoints/.
Dark mode is Gradio's own (?__theme=dark puts class "dark" on the page) with the browser's
prefers-color-scheme set to dark as well.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from app_server import model_settings, running_app  # noqa: E402
from test_browser import CHROMIUM, FLAGS  # noqa: E402

FAMILIES = ("marian", "distilbert", "bart", "vit", "llama")  # the tabs' checkpoints (app_server.model_settings)
TABS = (  # (tab title, elem_id prefix, what shows that the run is drawn)
    ("Basics", "basics", "#basics-heatmap .attn-view.attn-ready"),
    ("Explorer", "explore", "#explore-head-view .attn-view.attn-ready"),
    ("Translation", "translate", "#translate-heatmap .attn-view.attn-ready"),
    ("Question answering", "answer", "#answer-heatmap .attn-view.attn-ready"),
    ("Summarization", "summarize", "#summarize-heatmap .attn-view.attn-ready"),
    ("Image patches", "image", "#image-badge :text('recomputed from weights')"),
    ("Text generation", "generate", "#generate-heatmap .attn-view.attn-ready"),
)
WIDTHS = (1280, 420)
SCHEMES = ("light", "dark")
WAIT_MS = 120_000


def checkpoints(folder: Path) -> dict:
    """family -> a tiny random checkpoint, built once into `folder` (kept between runs)."""
    from attn_demos.adapters.random_checkpoints import build_checkpoint
    from attn_demos.tasks.examples import all_example_texts

    built = {}
    for family in FAMILIES:
        path = folder / family
        if not (path / "config.json").exists():
            build_checkpoint(family, path, extra_texts=all_example_texts())
        built[family] = path
    return built


def open_tab(page, title: str) -> None:
    """Click a tab, through Gradio's "More tabs" menu when the window is too narrow to show it."""
    tab = page.get_by_role("tab", name=title)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    page.get_by_label("More tabs").click()
    page.locator(".overflow-dropdown button", has_text=title).first.click()


def shoot(url: str, out: Path, tabs: list[str]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        for scheme in SCHEMES:
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 1000}, color_scheme=scheme)
                page.goto(url + ("?__theme=dark" if scheme == "dark" else "?__theme=light"), wait_until="load")
                page.get_by_role("tab").first.wait_for(timeout=WAIT_MS)
                for title, prefix, drawn in TABS:
                    if prefix not in tabs:
                        continue
                    open_tab(page, title)
                    if prefix != "basics":
                        page.locator(f"#{prefix}-run").click()
                    page.locator(drawn).first.wait_for(timeout=WAIT_MS)
                    page.wait_for_timeout(700)  # the views' scripts draw after the value lands
                    path = out / f"{width}-{scheme}-{prefix}.png"
                    page.screenshot(path=str(path), full_page=True)
                    saved.append(path)
                    print(path, flush=True)
                page.close()
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of every tab at 1280 and 420 px, light and dark.")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "screenshots")
    parser.add_argument("--tabs", default=",".join(prefix for _, prefix, _ in TABS))
    args = parser.parse_args()
    from attn_demos import settings

    print("attn_demos from", settings.__file__, flush=True)

    with settings.using(settings.Settings()):
        built = checkpoints(ROOT / "artifacts" / "checkpoints")
        with running_app(model_settings(built)) as (_, url):
            shoot(url, args.out, args.tabs.split(","))


if __name__ == "__main__":
    main()
