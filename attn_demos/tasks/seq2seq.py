"""Translation and summarization: generate with beam search, then show the cross-attention
taken along the beam that produced the output, checked against a from-scratch recomputation of
a teacher-forced pass over that output (eager). On sdpa generate() returns no attention: the
tab shows the recomputed weights of the teacher-forced pass, verified through the model's own
output (tasks/checked.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from attn_demos.adapters.extract import target_side, teacher_forced_inputs
from attn_demos.adapters.families import CROSS, DECODER
from attn_demos.adapters.generation import generate_plain, generate_with_attention, run_encoder
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.neuron import neuron_terms
from attn_demos.adapters.precision import EAGER, to_device
from attn_demos.core.pooling import display_tokens
from attn_demos.errors import BadInputError
from attn_demos.tasks.checked import checked_forward
from attn_demos.tasks.hardware import on_gpu
from attn_demos.tasks.inputs import clean_text, tokenize_text
from attn_demos.tasks.registry import display_name, get_model, model_notices
from attn_demos.tasks.views import (
    LIBRARY,
    OUTPUT,
    SelectedMap,
    head_choices,
    neuron_view_terms,
    select,
    select_map,
)


@dataclass
class Seq2SeqResult:
    """Output text and the attention of the steps that produced it (real rows only)."""

    model: str
    output_text: str
    source_tokens: list[str]  # S labels
    target_tokens: list[str]  # T labels: the token each decoding step produced
    decoder_inputs: list[str]  # T labels: what each step saw (start token, then the output so far)
    cross: np.ndarray | None  # (L, H, T, S) gathered from generate(); None under sdpa (it returns none)
    cross_recomputed: np.ndarray  # (L, H, T, S) from scratch, teacher-forced
    decoder: np.ndarray | None  # (L, H, T, T) gathered from generate(); None under sdpa
    decoder_recomputed: np.ndarray  # (L, H, T, T)
    notices: list[str] = field(default_factory=list)
    task: str = "translate"  # whose model made it (registry task), for the neuron view
    source: str | None = None  # the model named by the request (None: the task's configured one)
    inputs: dict | None = None  # the teacher-forced pass's inputs, on the CPU (1, S) / (1, T')
    steps: list[int] = field(default_factory=list)  # decoder position of each output token (T,)
    cross_output_errors: np.ndarray | None = None  # (L, H) sdpa: relative output error per layer and head
    decoder_output_errors: np.ndarray | None = None  # (L, H) sdpa

    @property
    def cross_shown(self) -> np.ndarray:
        """(L, H, T, S) the cross-attention the views draw: gathered (eager), else the verified recomputed one."""
        return self.cross_recomputed if self.cross is None else self.cross

    @property
    def decoder_shown(self) -> np.ndarray:
        """(L, H, T, T) likewise for the decoder's self-attention."""
        return self.decoder_recomputed if self.decoder is None else self.decoder

    @property
    def measure(self) -> str:
        return OUTPUT if self.cross is None else LIBRARY

    @property
    def num_layers(self) -> int:
        return self.cross_shown.shape[0]

    @property
    def num_heads(self) -> int:
        return self.cross_shown.shape[1]

    def head_options(self) -> list:
        return head_choices(self.num_heads, with_rollout=False)

    def cross_view(self, layer: int | str = "mean", head: int | str = "mean", words: bool = False) -> SelectedMap:
        """Target tokens (rows) × source tokens (columns): the alignment."""
        return select_map(
            "cross-attention", self.cross, self.cross_recomputed, self.target_tokens, self.source_tokens,
            layer, head, words, self.notices, self.cross_output_errors,
        )

    def decoder_view(self, layer: int | str = "mean", head: int | str = "mean", words: bool = False) -> SelectedMap:
        return select_map(
            "decoder self-attention", self.decoder, self.decoder_recomputed, self.target_tokens,
            self.decoder_inputs, layer, head, words, self.notices, self.decoder_output_errors,
        )

    def source_scores(self, target_index: int, layer: int | str = "mean", head: int | str = "mean") -> np.ndarray:
        """(S,) how much output token `target_index` attended to each source token."""
        if not 0 <= target_index < len(self.target_tokens):
            raise BadInputError(f"choose an output token between 0 and {len(self.target_tokens) - 1}")
        return select(self.cross_shown, layer, head)[target_index]

    def neuron(self, layer: int, head: int, target_index: int) -> dict:
        """The terms behind cross-attention row `target_index` of (layer, head): one teacher-forced
        pass over the stored output (on request), in the neuron view's vocabulary; compared with the
        gathered row (eager) or the verified row shown (sdpa)."""
        if self.inputs is None:
            raise BadInputError("this result keeps no inputs: run the model again")
        if not 0 <= target_index < len(self.target_tokens):
            raise BadInputError(f"choose an output token between 0 and {len(self.target_tokens) - 1}")
        loaded = get_model(self.task, self.source)
        inputs = {name: value.to(loaded.model.device) for name, value in self.inputs.items()}
        shown_row = self.cross_recomputed[int(layer), int(head), target_index]  # (S,) used under sdpa only
        terms = neuron_terms(loaded, inputs, CROSS, int(layer), int(head), self.steps[target_index], verified_row=shown_row)
        query_label = display_tokens(self.target_tokens)[target_index]
        return neuron_view_terms(terms, display_tokens(self.source_tokens), query_label, layer, head)

    def coverage(self, layer: int | str = "mean", head: int | str = "mean") -> np.ndarray:
        """(S,) total cross-attention each source token received over all output tokens."""
        return select(self.cross_shown, layer, head).sum(axis=0)


@on_gpu
def translate(text: str, source: str | None = None, num_beams: int = 4, max_new_tokens: int = 64) -> Seq2SeqResult:
    """Translate `text` with the translation model (or `source`)."""
    return run_seq2seq(
        get_model("translate", source), text, num_beams, max_new_tokens, what="text to translate", task="translate", source=source
    )


@on_gpu
def summarize(article: str, source: str | None = None, num_beams: int = 4, max_new_tokens: int = 80) -> Seq2SeqResult:
    """Summarize `article`; T5 checkpoints get their own "summarize: " prefix from the config."""
    clean_text(article, "article")  # refuse an empty article before the prefix makes it non-empty
    loaded = get_model("summarize", source)
    return run_seq2seq(
        loaded, summarization_prefix(loaded) + article, num_beams, max_new_tokens, "article", task="summarize", source=source
    )


def summarization_prefix(loaded: LoadedModel) -> str:
    params = getattr(loaded.config, "task_specific_params", None) or {}
    return (params.get("summarization") or {}).get("prefix", "")


def run_seq2seq(
    loaded: LoadedModel, text: str, num_beams: int, max_new_tokens: int, what: str = "text", min_new_tokens=None,
    task: str = "translate", source: str | None = None,
) -> Seq2SeqResult:
    """generate() once, then one checked teacher-forced pass over its output. Eager: generate()
    returns each step's attention, gathered along the winning beam and shown. sdpa: generate()
    returns none; the pass gives the weights shown, its decoder and cross-attention modules each
    verified through their own output. Either way the encoder runs once, before generate(), and
    the pass reuses its outputs (the view shows no encoder map)."""
    if not loaded.is_encoder_decoder:
        raise BadInputError(f"{display_name(loaded.source)} is not an encoder-decoder model; choose a translation or summary model")
    inputs, source_side, notices = tokenize_text(loaded, text, what=what)
    gathered = None  # kind -> (L, H, T, ·) from generate(), eager only
    if loaded.attn_implementation == EAGER:
        generated = generate_with_attention(loaded, inputs, source_side, num_beams, max_new_tokens, min_new_tokens)
        sequences, target = generated.sequences, generated.target
        forced_inputs = teacher_forced_inputs(inputs, sequences)
        forced_inputs["encoder_outputs"] = generated.encoder_outputs  # decoder and cross sites only
        gathered = {kind: generated.maps[kind].weights[0].cpu().numpy() for kind in (CROSS, DECODER)}
    else:
        inputs = to_device(inputs, loaded.device)
        with torch.no_grad():
            encoder_outputs = run_encoder(loaded, inputs, attentions=False)
        sequences = generate_plain(loaded, inputs, num_beams, max_new_tokens, min_new_tokens, encoder_outputs)
        target = target_side(loaded, sequences)
        forced_inputs = teacher_forced_inputs(inputs, sequences)
        forced_inputs["encoder_outputs"] = encoder_outputs  # decoder and cross sites only
    checked = checked_forward(loaded, forced_inputs, source_side, target, kinds=(CROSS, DECODER))
    cross, decoder = checked.stack(CROSS), checked.stack(DECODER)
    real = target.mask[0].cpu().numpy()  # (T,) steps that produced real tokens
    tokenizer = loaded.preprocessor
    output_text = tokenizer.decode(sequences[0], skip_special_tokens=True)
    return Seq2SeqResult(
        model=loaded.source,
        output_text=output_text,
        source_tokens=source_side.tokens[0],
        target_tokens=[t for t, keep in zip(target.produced[0], real) if keep],
        decoder_inputs=[t for t, keep in zip(target.tokens[0], real) if keep],
        cross=None if gathered is None else gathered[CROSS][:, :, real],  # (L, H, T, S)
        cross_recomputed=cross.recomputed[:, :, real],
        decoder=None if gathered is None else gathered[DECODER][:, :, real][:, :, :, real],  # (L, H, T, T)
        decoder_recomputed=decoder.recomputed[:, :, real][:, :, :, real],
        notices=model_notices(loaded) + notices,
        task=task,
        source=source,
        inputs={name: value.detach().cpu() for name, value in forced_inputs.items() if name != "encoder_outputs"},
        steps=[int(i) for i in np.flatnonzero(real)],
        cross_output_errors=cross.output_errors,
        decoder_output_errors=decoder.output_errors,
    )
