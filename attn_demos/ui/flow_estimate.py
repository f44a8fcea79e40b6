"""How long attention flow into one token takes, estimated before it runs from the token count.

Anchored on two measured runs of core/flow.py on this project's 2-core CPU (all-MiniLM-L6-v2, real
attention, 6 layers): ~2.5 s at 128 tokens (core/flow.py docstring) and 114 s at 512 tokens
(issue 8). Between them time grows as tokens^2.76; it is taken as linear in the layer count.
Random or very flat maps (tiny test checkpoints, ViT on random weights) finish sooner.
"""

from __future__ import annotations

import math

MEASURED_TOKENS = 128
MEASURED_LAYERS = 6
MEASURED_SECONDS = 2.5
LONG_TOKENS = 512
LONG_SECONDS = 114.0
EXPONENT = math.log(LONG_SECONDS / MEASURED_SECONDS) / math.log(LONG_TOKENS / MEASURED_TOKENS)  # ≈ 2.76


def flow_seconds(tokens: int, layers: int) -> float:
    """Estimated seconds for the flow into one token of a (layers, tokens) stack."""
    return MEASURED_SECONDS * (layers / MEASURED_LAYERS) * (tokens / MEASURED_TOKENS) ** EXPONENT


def flow_estimate_text(tokens: int, layers: int) -> str:
    """One line for the flow accordion, shown after a run and before any flow is computed."""
    return (
        f"Estimated time for {tokens} tokens × {layers} layers: {_duration(flow_seconds(tokens, layers))} "
        f"(from measured runs: ~2.5 s at 128 tokens, ~2 min at 512, 6 layers). Stop ends the wait."
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"
