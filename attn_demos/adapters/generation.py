"""Attention during generate(): per-step tensors gathered into full matrices along the beam that
produced each output, greedy or beam search."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from transformers.modeling_outputs import BaseModelOutput

from attn_demos.adapters.extract import Side, target_side
from attn_demos.adapters.families import CROSS, DECODER, ENCODER
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps, stack_layers
from attn_demos.errors import NoAttentionError


@dataclass
class GenerationResult:
    sequences: torch.Tensor  # (B, 1+T): decoder start token, then the generated tokens
    maps: dict[str, AttentionMaps]  # encoder (B,L,H,S,S), decoder (B,L,H,T,T), cross (B,L,H,T,S)
    source: Side
    target: Side
    scores: torch.Tensor | None  # (B,) sequence scores under beam search, else None
    encoder_outputs: BaseModelOutput | None = None  # the encoder pass generate() used: (B, S, D), unexpanded


def generate_with_attention(
    loaded: LoadedModel,
    model_inputs: dict,
    source: Side,
    num_beams: int = 1,
    max_new_tokens: int = 40,
    min_new_tokens: int | None = None,
) -> GenerationResult:
    """generate() with attention; row t of decoder/cross maps is the step that produced token t+1.

    The encoder runs once, here, exactly as generate() would run it; its outputs are kept so that a
    teacher-forced pass over the result can reuse them instead of encoding the source again.
    """
    with torch.no_grad():
        encoder_outputs = run_encoder(loaded, model_inputs)
        out = loaded.model.generate(
            **model_inputs,
            encoder_outputs=replace(encoder_outputs),  # generate() expands it per beam in place
            num_beams=num_beams,
            num_return_sequences=1,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=False,
            output_attentions=True,
            output_scores=num_beams > 1,
            return_dict_in_generate=True,
        )
    if not out.cross_attentions:
        raise NoAttentionError('generate() returned no cross-attentions; load with attn_implementation="eager"')
    sequences = out.sequences  # (B, 1+T)
    batch, steps = sequences.shape[0], sequences.shape[1] - 1
    rows = _rows_per_step(getattr(out, "beam_indices", None), batch, steps)  # (B, T), -1 = no step
    target = target_side(loaded, sequences)
    target.mask &= rows >= 0
    cross = _gather(out.cross_attentions, rows, key_length=source.mask.shape[1])  # (B, L, H, T, S)
    decoder = _gather(out.decoder_attentions, rows, key_length=steps)  # (B, L, H, T, T)
    maps = {
        ENCODER: AttentionMaps(
            ENCODER, stack_layers(out.encoder_attentions, "encoder"), source.tokens, source.tokens, source.mask, source.mask
        ),
        DECODER: AttentionMaps(DECODER, decoder, target.query_tokens, target.tokens, target.mask, target.mask),
        CROSS: AttentionMaps(CROSS, cross, target.query_tokens, source.tokens, target.mask, source.mask),
    }
    scores = getattr(out, "sequences_scores", None)
    return GenerationResult(sequences, maps, source, target, scores, encoder_outputs)


def run_encoder(loaded: LoadedModel, model_inputs: dict) -> BaseModelOutput:
    """The encoder pass of an encoder-decoder, with its attention: last_hidden_state (B, S, D)."""
    encoder = loaded.model.get_encoder()
    out = encoder(
        input_ids=model_inputs["input_ids"],
        attention_mask=model_inputs.get("attention_mask"),
        output_attentions=True,
        return_dict=True,
    )
    # T5's encoder returns another ModelOutput class, which its forward() would read as a tuple.
    return BaseModelOutput(last_hidden_state=out.last_hidden_state, attentions=out.attentions)


def _rows_per_step(beam_indices: torch.Tensor | None, batch: int, steps: int) -> torch.Tensor:
    """Which flat row of the per-step tensors (B·beams, …) holds example b at step t: (B, T).

    Greedy: row b. Beam search: beam_indices[b, t], the live beam that this output descends from
    at step t (-1 once the sequence has ended).
    """
    if beam_indices is None:
        return torch.arange(batch)[:, None].expand(batch, steps).clone()  # (B, T)
    rows = torch.full((batch, steps), -1, dtype=torch.long)  # (B, T)
    usable = min(steps, beam_indices.shape[1])
    rows[:, :usable] = beam_indices[:, :usable]
    return rows


def _gather(per_step: tuple, rows: torch.Tensor, key_length: int) -> torch.Tensor:
    """Tuple over steps of tuples over layers of (B·beams, H, 1, k_t) -> (B, L, H, T, key_length).

    Step t's keys (k_t ≤ key_length) fill the first k_t columns of row t; the rest stay 0.
    """
    batch, steps = rows.shape
    first = per_step[0][0]  # (B·beams, H, 1, k_0)
    layers, heads = len(per_step[0]), first.shape[1]
    full = first.new_zeros(batch, layers, heads, steps, key_length)  # (B, L, H, T, K)
    for t in range(min(steps, len(per_step))):
        step = torch.stack([layer[:, :, -1, :] for layer in per_step[t]], dim=1)  # (B·beams, L, H, k_t)
        live = rows[:, t] >= 0  # (B,)
        picked = step[rows[live, t]]  # (b_live, L, H, k_t)
        full[live, :, :, t, : picked.shape[-1]] = picked
    return full
