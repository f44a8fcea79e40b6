"""One checked forward pass, whichever attention implementation the tab's model was loaded with.

eager: the library returns its weights (library weights); the tabs show them, and the core's
recomputed weights are compared with them (max |Δ|).
sdpa: the fused kernel returns no weights; the tabs show the core's recomputed weights, verified
through the model's own output: max |weights·v − module output| / max |module output| per layer
and head, against the same tolerance (adapters/verify.py).

A model checked at the attention function (adapters/attention_function.py) is checked the same two
ways, the core's weights computed from the q, k, v each module passed to transformers' attention
function rather than from its weights; layer l of a kind is its l-th call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attn_demos.adapters.attention_function import AT_FUNCTION
from attn_demos.adapters.compare import weights_at_function
from attn_demos.adapters.extract import Side, forward_with_attention
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.precision import EAGER
from attn_demos.adapters.verify import forward_with_verification


@dataclass
class CheckedPass:
    """The model's outputs and, per kind, what a tab draws and checks."""

    outputs: object
    library: dict[str, torch.Tensor] | None  # kind -> (B, L, H, Tq, Tk) the library's weights; None under sdpa
    recomputed: dict[str, torch.Tensor]  # kind -> (B, L, H, Tq, Tk) the core's weights
    output_errors: dict[str, torch.Tensor] | None  # sdpa: kind -> (B, L, H) relative output error; None under eager

    def stack(self, kind: str, example: int = 0) -> CheckedStack:
        """One example's stack of `kind`, as numpy arrays on the CPU."""
        return CheckedStack(
            library=None if self.library is None else _array(self.library[kind][example]),
            recomputed=_array(self.recomputed[kind][example]),
            output_errors=None if self.output_errors is None else self.output_errors[kind][example].numpy(),
        )


@dataclass
class CheckedStack:
    library: np.ndarray | None  # (L, H, Tq, Tk); None under sdpa (the kernel returns no weights)
    recomputed: np.ndarray  # (L, H, Tq, Tk)
    output_errors: np.ndarray | None  # (L, H) under sdpa, else None


def checked_forward(
    loaded: LoadedModel, model_inputs: dict, source: Side, target: Side | None = None, kinds: tuple[str, ...] | None = None
) -> CheckedPass:
    """One forward pass of `loaded` on its own attention implementation, checked as the module doc
    says; `kinds` limits the sdpa check to the sites of those kinds (a pass given encoder outputs)."""
    if loaded.depth == AT_FUNCTION:
        return checked_at_function(loaded, model_inputs)
    if loaded.attn_implementation == EAGER:
        result = forward_with_attention(loaded, model_inputs, source, target, logit_size=False)  # tabs use one fixed tolerance
        library = {kind: maps.weights for kind, maps in result.maps.items() if kind in result.recomputed}
        return CheckedPass(result.outputs, library, result.recomputed, None)
    verified = forward_with_verification(loaded, model_inputs, source, target, kinds=kinds)
    recomputed = {kind: maps.weights for kind, maps in verified.maps.items()}
    return CheckedPass(verified.outputs, None, recomputed, verified.errors)


def checked_at_function(loaded: LoadedModel, model_inputs: dict) -> CheckedPass:
    """One pass at the attention-function depth: each call's library weights (eager) and the core's."""
    outputs, library, recomputed, record = weights_at_function(loaded, model_inputs)
    if loaded.attn_implementation == EAGER:
        return CheckedPass(outputs, library, recomputed, None)
    return CheckedPass(outputs, None, recomputed, record.errors()[0])  # kind -> (B, L, H) relative output errors


def _array(weights: torch.Tensor) -> np.ndarray:
    return weights.detach().cpu().numpy()
