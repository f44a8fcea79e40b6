"""Translation: which source tokens each output token attended to, along the winning beam."""

import gradio as gr

from attn_demos.render.panels import seq2seq
from attn_demos.tasks.examples import load_examples

import seq2seq_tab


def build() -> None:
    examples = [row["text"] for row in load_examples("translate")]
    seq2seq_tab.build(
        "translate", seq2seq.run_translation, "translate", "English text", examples[0], examples, "Translate"
    )


with gr.Blocks(title="attn-demos · translation") as demo:
    build()

if __name__ == "__main__":
    demo.launch()
