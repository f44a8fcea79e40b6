"""Explorer: any encoder's self-attention, per layer and head, fused, rolled out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from attn_demos.adapters.attention_function import FROM_WEIGHTS
from attn_demos.adapters.families import DECODER, ENCODER
from attn_demos.adapters.neuron import neuron_terms
from attn_demos.core.flow import attention_flow
from attn_demos.core.pooling import display_tokens
from attn_demos.errors import BadInputError
from attn_demos.tasks.checked import checked_forward
from attn_demos.tasks.hardware import on_gpu
from attn_demos.tasks.inputs import tokenize_text
from attn_demos.tasks.registry import display_name, get_model, model_notices
from attn_demos.tasks.views import SelectedMap, SelfAttentionStack, max_abs_difference, neuron_view_terms, select_map


@dataclass
class ExploreResult(SelfAttentionStack):
    """One text's self-attention: the library's weights and the core's (eager), or the core's
    verified through the model's own output (sdpa)."""

    model: str
    tokens: list[str]
    library: np.ndarray | None  # (L, H, T, T); None under sdpa (the kernel returns no weights)
    recomputed: np.ndarray  # (L, H, T, T)
    notices: list[str] = field(default_factory=list)
    source: str | None = None  # what explore() was given (None: the tab's configured model)
    inputs: dict | None = None  # the model inputs of the run, on the CPU (for the neuron view)
    kind: str = ENCODER  # ENCODER, or DECODER for decoder-only (causal) models
    output_errors: np.ndarray | None = None  # (L, H) sdpa: relative output error per layer and head
    depth: str = FROM_WEIGHTS  # how deep `recomputed` was checked (adapters/attention_function.py)

    def view(self, layer: int | str = 0, head: int | str = "mean", words: bool = False) -> SelectedMap:
        """head: an index, "mean"/"max"/"min", or "rollout" (all layers, residual included)."""
        return select_map(
            "self-attention", self.library, self.recomputed, self.tokens, self.tokens, layer, head, words, self.notices,
            self.output_errors, self.depth,
        )

    def flow_scores(self, query_index: int = 0, progress=None, cancelled=None) -> np.ndarray:
        """(T,) attention flow from every input token into token `query_index` (max-flow, all layers);
        progress(done, total) and cancelled() as in core.flow.attention_flow."""
        if not 0 <= query_index < len(self.tokens):
            raise BadInputError(f"choose a token between 0 and {len(self.tokens) - 1}")
        return attention_flow(self.shown, query_index=query_index, progress=progress, cancelled=cancelled)

    def neuron(self, layer: int, head: int, query_index: int) -> dict:
        """The terms behind row `query_index` of (layer, head), recomputed from the stored inputs
        (one more forward pass, on request), in the neuron view's vocabulary (render/interactive);
        compared with the library's row (eager) or the verified row shown (sdpa)."""
        if self.inputs is None:
            raise BadInputError("this result keeps no inputs: run the model again")
        if not 0 <= query_index < len(self.tokens):
            raise BadInputError(f"choose a query token between 0 and {len(self.tokens) - 1}")
        loaded = get_model("explore", self.source)
        inputs = {name: value.to(loaded.model.device) for name, value in self.inputs.items()}
        shown_row = self.recomputed[int(layer), int(head), int(query_index)]  # (T,) used under sdpa only
        terms = neuron_terms(loaded, inputs, self.kind, int(layer), int(head), int(query_index), verified_row=shown_row)
        labels = display_tokens(self.tokens)
        return neuron_view_terms(terms, labels, labels[query_index], layer, head)

    @property
    def max_abs_err(self) -> float | None:
        """Worst |Δ| library vs recomputed over every layer and head; None under sdpa (no library weights)."""
        if self.library is None:
            return None
        return max_abs_difference(self.library, self.recomputed)


@on_gpu
def explore(text: str, source: str | None = None, max_tokens: int | None = None) -> ExploreResult:
    """Run the Explorer's model (or `source`) once on `text`."""
    loaded = get_model("explore", source)
    if loaded.is_encoder_decoder or loaded.family.vision:
        raise BadInputError(
            f"{display_name(loaded.source)} is not a text encoder or decoder-only model; the Explorer takes models such as BERT or GPT-2"
        )
    inputs, side, notices = tokenize_text(loaded, text, max_tokens)
    kind = DECODER if loaded.is_decoder_only else ENCODER  # decoder-only: causal self-attention
    stack = checked_forward(loaded, inputs, side).stack(kind)
    return ExploreResult(
        model=loaded.source,
        tokens=side.tokens[0],
        library=stack.library,  # (L, H, T, T) or None (sdpa)
        recomputed=stack.recomputed,  # (L, H, T, T)
        output_errors=stack.output_errors,  # (L, H) or None (eager)
        notices=model_notices(loaded) + notices,
        source=source,
        inputs={name: value.detach().cpu() for name, value in inputs.items()},  # (1, T) each
        kind=kind,
        depth=loaded.depth,
    )
