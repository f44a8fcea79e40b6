"""Summarization: for each summary token, the article as cross-attention sees it; coverage."""

import gradio as gr

from attn_demos.render.panels import seq2seq
from attn_demos.tasks.examples import load_examples

import seq2seq_tab


def build() -> None:
    examples = [row["article"] for row in load_examples("summarize")]
    seq2seq_tab.build(
        "summarize", seq2seq.run_summary, "summarize", "Article", examples[0], examples, "Summarize"
    )


with gr.Blocks(title="attn-demos · summarization") as demo:
    build()

if __name__ == "__main__":
    demo.launch()
