"""Every tab in one Gradio app, each built once: `build()` makes it, `launch()` serves it.

What one request may cost is bounded here and in the tasks, by the settings' request limits
(docs/settings.md): the body of a request, and of an upload, before it is read (body_limit.py).
Exports are served from where they were written, and removed after EXPORT_MAX_AGE; a visitor who
leaves stops their attention flow (wiring.stop_flows_of)."""

from __future__ import annotations

import asyncio
import contextlib
import functools

import gradio as gr

from attn_demos import settings
from attn_demos.ui import basics, explorer, generation, images, qa, seq2seq, wiring
from attn_demos.ui.body_limit import MB, body_limit
from attn_demos.ui.common import EXPORT_MAX_AGE, export_folder, remove_old_exports

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
FILES_SWEPT_S = 60  # how often files older than EXPORT_MAX_AGE are removed (exports, uploads, pictures)

INTRO = (
    "# attn-demos\n"
    "Which tokens or patches does a transformer attend to? Every picture here is checked live: "
    "the same attention is **recomputed from scratch** with the textbook formula "
    "`softmax(q·kᵀ/√d_k)·v` and the largest difference is shown beside it."
)


def build() -> gr.Blocks:
    # Exports are served from their own folder (no copy in Gradio's cache); Gradio's cache (uploads,
    # the image tab's pictures) is swept on the same schedule.
    gr.set_static_paths([export_folder()])
    with gr.Blocks(title="attn-demos", delete_cache=(FILES_SWEPT_S, EXPORT_MAX_AGE)) as blocks:
        gr.Markdown(INTRO)
        for title, name, build_tab in TABS:
            with gr.Tab(title, elem_id=f"tab-{name}"):
                opening = build_tab()  # a tab that opens on a result returns what wires it to the page's load
            if opening is not None:
                opening(blocks)
        blocks.unload(wiring.stop_flows_of)  # the page was closed: its attention flow stops
    blocks.queue(default_concurrency_limit=CONCURRENCY_PER_MODEL, max_size=QUEUE_SIZE)
    return blocks


def server_options() -> dict:
    """launch() arguments that bound each request before it is read (the settings' body and upload
    limits: a larger one is answered 413 in one line naming them) and sweep the exports."""
    return {
        "max_file_size": int(settings.current().max_upload_mb * MB),  # Gradio's page checks it before sending
        "app_kwargs": {"middleware": [body_limit()], "lifespan": _exports_swept},
    }


@contextlib.asynccontextmanager
async def _exports_swept(app):
    """While the server runs, exports older than EXPORT_MAX_AGE are removed; at shutdown, all."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(FILES_SWEPT_S)
            remove_old_exports()

    task = asyncio.create_task(sweep())
    try:
        yield
    finally:
        task.cancel()
        remove_old_exports(max_age=0)


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False, **kwargs):
    """Listen where the settings say unless told here (default 127.0.0.1:7860; Spaces sets
    GRADIO_SERVER_NAME=0.0.0.0)."""
    from attn_demos.render import interactive  # here, not at the top: the tab list above stays one edit

    host = host or settings.current().host
    port = port or settings.current().port
    kwargs.setdefault("state_session_capacity", SESSIONS_KEPT)
    kwargs.setdefault("head", interactive.INTERACTIVE_HEAD)  # the views' script and style (Gradio 6: launch's)
    options = server_options()
    kwargs.setdefault("max_file_size", options["max_file_size"])
    kwargs["app_kwargs"] = {**options["app_kwargs"], **kwargs.get("app_kwargs", {})}
    return demo.launch(server_name=host, server_port=port, share=share, **kwargs)
