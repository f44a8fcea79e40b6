"""Attention during generate(): per-step tensors gathered into full matrices along the beam that
produced each output, greedy or beam search."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from transformers.modeling_outputs import BaseModelOutput

from attn_demos.adapters.extract import Side, target_side, token_labels
from attn_demos.adapters.families import CROSS, DECODER, ENCODER
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps, stack_layers
from attn_demos.adapters.precision import to_device
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
    Runs on the model's device; the maps stay there.
    """
    device = loaded.device
    source = source.to(device)
    model_inputs = to_device(model_inputs, device)
    with torch.no_grad():
        encoder_outputs = run_encoder(loaded, model_inputs)
        out = loaded.model.generate(
            **model_inputs,
            encoder_outputs=replace(encoder_outputs),  # generate() expands it per beam in place
            **_search_settings(num_beams, max_new_tokens, min_new_tokens),
        )
    if not out.cross_attentions:
        raise NoAttentionError('generate() returned no cross-attentions; load with attn_implementation="eager"')
    sequences = out.sequences  # (B, 1+T)
    batch, steps = sequences.shape[0], sequences.shape[1] - 1
    rows = _rows_per_step(getattr(out, "beam_indices", None), batch, steps).to(device)  # (B, T), -1 = no step
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


def generate_plain(
    loaded: LoadedModel,
    inputs: dict,
    num_beams: int,
    max_new_tokens: int,
    min_new_tokens: int | None = None,
    encoder_outputs: BaseModelOutput | None = None,
) -> torch.Tensor:
    """generate() on the model's own kernel, without attention (sdpa returns none): the sequences
    (B, 1+T), decoder start token first; the same deterministic search as the eager path. Given
    `encoder_outputs`, generate() does not encode the source again."""
    reuse = {} if encoder_outputs is None else {"encoder_outputs": replace(encoder_outputs)}  # expanded per beam in place
    with torch.no_grad():
        return loaded.model.generate(
            **to_device(inputs, loaded.device),
            **reuse,
            **search_settings(num_beams, max_new_tokens, min_new_tokens),
        )


def search_settings(num_beams: int, max_new_tokens: int, min_new_tokens: int | None) -> dict:
    """The deterministic search every generate() of the project runs, with attention or without."""
    return dict(
        num_beams=num_beams,
        num_return_sequences=1,
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        do_sample=False,
    )


def _search_settings(num_beams: int, max_new_tokens: int, min_new_tokens: int | None) -> dict:
    """generate() settings of both paths: the search, returning every step's attention."""
    return dict(
        search_settings(num_beams, max_new_tokens, min_new_tokens),
        output_attentions=True,
        output_scores=num_beams > 1,
        return_dict_in_generate=True,
    )


def run_encoder(loaded: LoadedModel, model_inputs: dict, attentions: bool = True) -> BaseModelOutput:
    """The encoder pass of an encoder-decoder, with its attention unless told not to:
    last_hidden_state (B, S, D). Inputs must be on the model's device."""
    encoder = loaded.model.get_encoder()
    out = encoder(
        input_ids=model_inputs["input_ids"],
        attention_mask=model_inputs.get("attention_mask"),
        output_attentions=attentions,
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


@dataclass
class CausalGenerationResult:
    """A decoder-only model's continuation and the attention of every position of prompt + output.

    Row p of the map is the query at position p: prompt rows come from the first step, row P+t−1
    from step t (the step that read output token t−1), each from the beam its output descends from.
    """

    sequences: torch.Tensor  # (B, P+N): left-padded prompt, then the N generated tokens
    prompt_length: int  # P
    maps: dict[str, AttentionMaps]  # decoder (B, L, H, P+N−1, P+N−1)
    side: Side  # labels and key mask of sequences[:, :-1]; query_real marks the rows that are data
    scores: torch.Tensor | None  # (B,) sequence scores under beam search, else None


def generate_causal_with_attention(
    loaded: LoadedModel,
    model_inputs: dict,
    num_beams: int = 1,
    max_new_tokens: int = 20,
    min_new_tokens: int | None = None,
) -> CausalGenerationResult:
    """generate() on a decoder-only model with attention, gathered per step along each output's beam."""
    inputs = {k: v for k, v in model_inputs.items() if k != "position_ids"}  # generate() counts positions itself
    with torch.no_grad():
        out = loaded.model.generate(
            **inputs, **_search_settings(num_beams, max_new_tokens, min_new_tokens)
        )
    if not out.attentions:
        raise NoAttentionError('generate() returned no attentions; load with attn_implementation="eager"')
    prompt_mask = model_inputs["attention_mask"].bool()  # (B, P)
    sequences = out.sequences  # (B, P+N)
    batch, prompt_length = prompt_mask.shape
    steps = sequences.shape[1] - prompt_length  # N
    rows = _rows_per_step(getattr(out, "beam_indices", None), batch, steps)  # (B, N), -1 = no step
    length = prompt_length + steps - 1
    weights = _gather_causal(out.attentions, rows, prompt_length, length)  # (B, L, H, P+N−1, P+N−1)
    key_mask = torch.cat([prompt_mask, prompt_mask.new_ones(batch, steps - 1)], dim=1)  # (B, P+N−1)
    query_real = key_mask & _real_rows(sequences[:, prompt_length:], loaded.config.eos_token_id, rows, prompt_length)
    tokens = [token_labels(loaded.preprocessor, ids) for ids in sequences[:, :-1].tolist()]
    side = Side(tokens, key_mask, query_real=query_real)
    maps = {DECODER: AttentionMaps(DECODER, weights, tokens, tokens, query_real, key_mask)}
    return CausalGenerationResult(sequences, prompt_length, maps, side, getattr(out, "sequences_scores", None))


def _real_rows(generated: torch.Tensor, eos, rows: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """(B, P+N−1): prompt rows, then row P+g−1 while output token g is at or before the first EOS and had a step."""
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    is_eos = torch.isin(generated, eos_ids)  # (B, N)
    after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0  # (B, N) strictly after the first EOS
    produced_real = ~after_eos & (rows >= 0)  # (B, N): output token g is real
    prompt_rows = produced_real[:, :1].expand(-1, prompt_length - 1)  # (B, P−1): they exist if step 0 ran
    return torch.cat([prompt_rows, produced_real], dim=1)  # (B, P+N−1)


def _gather_causal(per_step: tuple, rows: torch.Tensor, prompt_length: int, length: int) -> torch.Tensor:
    """Steps (tuples over layers of (B·beams, H, q_t, k_t)) -> (B, L, H, length, length).

    Step 0 holds the prompt's P rows; step t ≥ 1 holds one row, position P+t−1. A layer with a
    sliding-window cache returns only its last k_t keys, which end at the query's own position.
    """
    batch, steps = rows.shape
    first = per_step[0][0]  # (B·beams, H, P, P)
    layers, heads = len(per_step[0]), first.shape[1]
    full = first.new_zeros(batch, layers, heads, length, length)  # (B, L, H, T, T)
    for t in range(min(steps, len(per_step))):
        live = rows[:, t] >= 0  # (B,)
        query_rows = slice(0, prompt_length) if t == 0 else slice(prompt_length + t - 1, prompt_length + t)
        end = query_rows.stop  # one past the last key: the query's own position
        for layer, weights in enumerate(per_step[t]):
            picked = weights[rows[live, t]][:, :, -(end - query_rows.start) :]  # (b_live, H, q_t, k_t)
            full[live, layer, :, query_rows, end - picked.shape[-1] : end] = picked
    return full
