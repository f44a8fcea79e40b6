"""Everything that differs between --quick and the full run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sizes:
    quick: bool
    repeats: int  # timed repeats per side of a ratio
    text_tokens: dict[str, int]  # encoder-only or decoder-only model -> tokens
    source_tokens: dict[str, int]  # seq2seq model -> source tokens
    new_tokens: int  # generate(): min_new_tokens = max_new_tokens
    core_length: int  # torch core vs SDPA: N
    core_heads: int
    core_dim: int
    flow_length: int  # attention flow on random maps: T
    flow_layers: int  # L
    flow_reference_sources: int  # networkx runs (extrapolated to T)
    flow_real_tokens: int  # attention flow on MiniLM's attention: T
    flow_real_long_tokens: int  # and a longer T
    tab_repeats: int  # interleaved pairs per tab
    tabs: dict  # tab -> its input size (tokens; (source tokens, new tokens) for seq2seq)
    payload_tokens: int


FULL = Sizes(
    quick=False,
    repeats=7,
    text_tokens={"minilm": 128, "distilbert": 384, "llama": 128, "qwen2": 128},
    source_tokens={"marian": 64, "bart": 256, "t5": 128},
    new_tokens=24,
    core_length=512,
    core_heads=12,
    core_dim=64,
    flow_length=197,
    flow_layers=12,
    flow_reference_sources=3,
    flow_real_tokens=128,
    flow_real_long_tokens=512,
    tab_repeats=5,
    tabs={"translate": (20, 20), "answer": 384, "summarize": (400, 60), "classify_image": 224},
    payload_tokens=512,
)
QUICK = Sizes(
    quick=True,
    repeats=3,
    text_tokens={"minilm": 16, "distilbert": 16, "llama": 16, "qwen2": 16},
    source_tokens={"marian": 12, "bart": 12, "t5": 12},
    new_tokens=4,
    core_length=64,
    core_heads=2,
    core_dim=16,
    flow_length=12,
    flow_layers=4,
    flow_reference_sources=12,
    flow_real_tokens=12,
    flow_real_long_tokens=16,
    tab_repeats=2,
    tabs={"translate": (12, 4), "answer": 16, "summarize": (12, 4), "classify_image": 32},
    payload_tokens=16,
)
