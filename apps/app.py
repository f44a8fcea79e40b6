"""attn-demos: every demo in one app, a tab each. `python apps/app.py` or `attn-demos launch`.

Hugging Face Spaces runs this file (README front matter: app_file: apps/app.py).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent):  # the apps and the attn_demos package, wherever this runs from
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import gradio as gr  # noqa: E402

import basics_app  # noqa: E402
import explorer_app  # noqa: E402
import image_app  # noqa: E402
import qa_app  # noqa: E402
import summarization_app  # noqa: E402
import translation_app  # noqa: E402

TABS = [
    ("Basics", basics_app),
    ("Explorer", explorer_app),
    ("Translation", translation_app),
    ("Question answering", qa_app),
    ("Summarization", summarization_app),
    ("Image patches", image_app),
]
CONCURRENCY_PER_MODEL = 2  # 2 CPU cores: more parallel forwards only queue inside torch
SESSIONS_KEPT = 64  # visitors whose last result stays in memory for re-drawing (oldest dropped first)

INTRO = (
    "# attn-demos\n"
    "Which tokens or patches does a transformer attend to? Every picture here is checked live: "
    "the same attention is **recomputed from scratch** with the textbook formula "
    "`softmax(q·kᵀ/√d_k)·v` and the largest difference is shown beside it."
)


def build() -> gr.Blocks:
    with gr.Blocks(title="attn-demos", delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(INTRO)
        for title, module in TABS:
            with gr.Tab(title, elem_id=f"tab-{module.__name__.removesuffix('_app')}"):
                module.build()
    blocks.queue(default_concurrency_limit=CONCURRENCY_PER_MODEL, max_size=64)
    return blocks


demo = build()


def launch(host: str | None = None, port: int | None = None, share: bool = False, **kwargs):
    """Listen on 127.0.0.1 unless told otherwise (Spaces sets GRADIO_SERVER_NAME=0.0.0.0)."""
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = port or int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    kwargs.setdefault("state_session_capacity", SESSIONS_KEPT)
    return demo.launch(server_name=host, server_port=port, share=share, **kwargs)


if __name__ == "__main__":
    launch()
