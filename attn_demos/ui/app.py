"""Every tab in one Gradio app, each built once: `build()` makes it, `launch()` serves it."""

from __future__ import annotations

import functools

import gradio as gr

from attn_demos import settings
from attn_demos.ui import basics, explorer, generation, images, qa, seq2seq

TABS = [  # (title, name, what builds it)
    ("Basics", "basics", basics.build),
    ("Explorer", "explore", explorer.build),
    ("Translation", "translate", functools.partial(seq2seq.build, "translate")),
    ("Question answering", "answer", qa.build),
    ("Summarization", "summarize", functools.partial(seq2seq.build, "summarize")),
    ("Image patches", "image", images.build),
    ("Text generation", "generate", generation.build),
]
CONCURRENCY_PER_MODEL = 2  # 2 CPU cores: more parallel forwards only queue inside torch
QUEUE_SIZE = 64
SESSIONS_KEPT = 64  # visitors whose last result stays in memory for re-drawing (oldest dropped first)
EXPORTS_KEPT_S = 3600  # Gradio's copies of served files are deleted after an hour

INTRO = (
    "# attn-demos\n"
    "Which tokens or patches does a transformer attend to? Every picture here is checked live: "
    "the same attention is **recomputed from scratch** with the textbook formula "
    "`softmax(q·kᵀ/√d_k)·v` and the largest difference is shown beside it."
)


def build() -> gr.Blocks:
    with gr.Blocks(title="attn-demos", delete_cache=(EXPORTS_KEPT_S, EXPORTS_KEPT_S)) as blocks:
        gr.Markdown(INTRO)
        for title, name, build_tab in TABS:
            with gr.Tab(title, elem_id=f"tab-{name}"):
                opening = build_tab()  # a tab that opens on a result returns what wires it to the page's load
            if opening is not None:
                opening(blocks)
    blocks.queue(default_concurrency_limit=CONCURRENCY_PER_MODEL, max_size=QUEUE_SIZE)
    return blocks


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False, **kwargs):
    """Listen where the settings say unless told here (default 127.0.0.1:7860; Spaces sets
    GRADIO_SERVER_NAME=0.0.0.0)."""
    from attn_demos.render import interactive  # here, not at the top: the tab list above stays one edit

    host = host or settings.current().host
    port = port or settings.current().port
    kwargs.setdefault("state_session_capacity", SESSIONS_KEPT)
    kwargs.setdefault("head", interactive.INTERACTIVE_HEAD)  # the views' script and style (Gradio 6: launch's)
    return demo.launch(server_name=host, server_port=port, share=share, **kwargs)
