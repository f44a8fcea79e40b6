"""How long attention flow into one token takes, estimated before it runs from the token count.

Anchored on one measured run of core/flow.py on this project's 2-core CPU, quiet (all-MiniLM-L6-v2,
real attention, 6 layers, the same sentence repeated to length; 2026-11-26): 0.98 s at 128 tokens
and 74 s at 512. Between them time grows as tokens^3.1; it is taken as linear in the layer count.
Random or very flat maps (tiny test checkpoints, ViT on random weights) finish sooner.
"""

from __future__ import annotations

import math

MEASURED_TOKENS = 128
MEASURED_LAYERS = 6
MEASURED_SECONDS = 0.98
LONG_TOKENS = 512
LONG_SECONDS = 74.0
EXPONENT = math.log(LONG_SECONDS / MEASURED_SECONDS) / math.log(LONG_TOKENS / MEASURED_TOKENS)  # ≈ 3.1


def flow_seconds(tokens: int, layers: int) -> float:
    """Estimated seconds for the flow into one token of a (layers, tokens) stack."""
    return MEASURED_SECONDS * (layers / MEASURED_LAYERS) * (tokens / MEASURED_TOKENS) ** EXPONENT


def flow_estimate_text(tokens: int, layers: int) -> str:
    """One line for the flow accordion, shown after a run and before any flow is computed."""
    return (
        f"Estimated time for {tokens} tokens × {layers} layers: {_duration(flow_seconds(tokens, layers))} "
        f"(measured: ~1 s at 128 tokens, ~1 min at 512, 6 layers). Stop ends it."
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"
