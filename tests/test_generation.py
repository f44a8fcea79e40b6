"""Attention during generate(): the per-step maps gathered along each output's beam must equal a
teacher-forced forward pass over the final sequence; a wrong gather must not."""

from __future__ import annotations

import pytest
import torch
from conftest import SEQ2SEQ_FAMILIES

from attn_demos.adapters import generation
from attn_demos.adapters.extract import tokenize
from attn_demos.adapters.generation import generate_with_attention
from attn_demos.adapters.loading import load_model
from attn_demos.tasks.examples import all_example_texts

TEXTS = ["The cat sat on the mat.", "I would like a cup of coffee, please.", "Attention is all you need."]
MAX_NEW_TOKENS = 10
TOLERANCE = 1e-5  # float32


def teacher_forced(loaded, inputs, sequences):
    """The model's own forward pass over the generated sequence: (B, L, H, T, ·) per kind."""
    with torch.no_grad():
        out = loaded.model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            decoder_input_ids=sequences[:, :-1],  # (B, T): start token and all but the last output
            output_attentions=True,
            return_dict=True,
        )
    return {
        "encoder": torch.stack(out.encoder_attentions, dim=1),
        "decoder": torch.stack(out.decoder_attentions, dim=1),
        "cross": torch.stack(out.cross_attentions, dim=1),
    }


def real_steps(sequences: torch.Tensor, eos: int) -> torch.Tensor:
    """(B, T) True for every produced token up to and including the first EOS."""
    produced = sequences[:, 1:]  # (B, T)
    rows = []
    for ids in produced.tolist():
        end = ids.index(eos) + 1 if eos in ids else len(ids)
        rows.append([t < end for t in range(len(ids))])
    return torch.tensor(rows)


def row_error(library, recomputed, real) -> float:
    """max |Δ| over real query rows; (B, L, H, T, K) tensors, real (B, T)."""
    rows = real[:, None, None, :, None].expand_as(library)
    return float((library - recomputed).abs()[rows].max())


def raw_generate(loaded, inputs, num_beams):
    """generate() itself, with the settings generate_with_attention uses."""
    with torch.no_grad():
        return loaded.model.generate(
            **inputs,
            num_beams=num_beams,
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            output_attentions=True,
            return_dict_in_generate=True,
        )


def gather(per_step, rows: torch.Tensor, key_length: int) -> torch.Tensor:
    """Our own gather: row t of example b is step t's row rows[b, t] of the flat (B·beams) batch."""
    batch, steps = rows.shape
    layers, heads = len(per_step[0]), per_step[0][0].shape[1]
    full = torch.zeros(batch, layers, heads, steps, key_length)  # (B, L, H, T, K)
    for t in range(steps):
        for b in range(batch):
            if rows[b, t] < 0:
                continue
            for layer in range(layers):
                row = per_step[t][layer][rows[b, t], :, -1, :]  # (H, k_t)
                full[b, layer, :, t, : row.shape[-1]] = row
    return full


def final_beam_rows(beam_indices: torch.Tensor) -> torch.Tensor:
    """The WRONG rows: each output's last live beam, reused for every step."""
    last = torch.stack([row[row >= 0][-1] for row in beam_indices])  # (B,)
    return last[:, None].expand_as(beam_indices).clone()


def beams_reorder(beam_indices: torch.Tensor) -> bool:
    """Does some output descend from a beam row other than its final one at some step?"""
    return bool((beam_indices != final_beam_rows(beam_indices))[beam_indices >= 0].any())


# --- the gathered maps equal teacher forcing -----------------------------------------------------


@pytest.mark.parametrize("batch", ["single", "padded"])
@pytest.mark.parametrize("num_beams", [1, 3, 4])
@pytest.mark.parametrize("family", SEQ2SEQ_FAMILIES)
def test_gathered_maps_match_teacher_forcing(tiny_model, family, num_beams, batch):
    loaded = tiny_model(family)
    texts = TEXTS[:1] if batch == "single" else TEXTS
    inputs, source = tokenize(loaded, texts)
    result = generate_with_attention(loaded, inputs, source, num_beams=num_beams, max_new_tokens=MAX_NEW_TOKENS)
    sequences = result.sequences  # (B, 1+T)
    assert sequences.shape[0] == len(texts)
    assert torch.equal(sequences, raw_generate(loaded, inputs, num_beams).sequences)

    forced = teacher_forced(loaded, inputs, sequences)
    real = real_steps(sequences, loaded.config.eos_token_id)  # (B, T)
    assert torch.equal(result.target.mask, real)
    for kind in ("decoder", "cross"):
        assert result.maps[kind].weights.shape == forced[kind].shape
        error = row_error(forced[kind], result.maps[kind].weights, real)
        assert error <= TOLERANCE, f"{kind}: {error:.2e}"
    encoder_real = inputs["attention_mask"].bool()
    assert row_error(forced["encoder"], result.maps["encoder"].weights, encoder_real) <= TOLERANCE

    cross = result.maps["cross"].weights  # (B, L, H, T, S)
    sums = cross.sum(-1)[real[:, None, None, :].expand(cross.shape[:-1])]
    torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-5)
    for b in range(len(texts)):  # padded source tokens get nothing
        assert (cross[b][..., ~encoder_real[b]] == 0).all()
    decoder = result.maps["decoder"].weights  # (B, L, H, T, T)
    upper = torch.ones(decoder.shape[-2:], dtype=torch.bool).triu(1)
    assert (decoder[..., upper] == 0).all()


@pytest.mark.parametrize("num_beams", [1, 4])
@pytest.mark.parametrize("family", SEQ2SEQ_FAMILIES)
def test_outputs_that_end_early_are_masked_after_their_eos(checkpoints, family, num_beams):
    loaded = load_model(str(checkpoints[family]))  # a private copy: its generation config is changed
    # The library's own length penalty pushes EOS up from step 2 on, so outputs end at different steps
    # (greedy needs a stronger push than beam search, whose beams end on their own sooner).
    decay = 1.6 if num_beams == 1 else 1.1
    loaded.model.generation_config.exponential_decay_length_penalty = (2, decay)
    texts = all_example_texts()[:4]
    inputs, source = tokenize(loaded, texts)
    result = generate_with_attention(loaded, inputs, source, num_beams=num_beams, max_new_tokens=16)
    real = real_steps(result.sequences, loaded.config.eos_token_id)
    assert len(set(real.sum(1).tolist())) > 1, "precondition: outputs of different lengths"
    assert not real.all()
    assert torch.equal(result.target.mask, real)
    forced = teacher_forced(loaded, inputs, result.sequences)
    for kind in ("decoder", "cross"):
        assert row_error(forced[kind], result.maps[kind].weights, real) <= TOLERANCE
    trimmed = result.maps["cross"].example(0)
    assert trimmed.weights.shape[-2] == int(real[0].sum())
    assert trimmed.query_tokens[0][-1] == loaded.preprocessor.eos_token


@pytest.mark.parametrize("family", SEQ2SEQ_FAMILIES)
def test_compare_report_passes_when_outputs_end_early(checkpoints, family):
    from attn_demos.adapters.compare import compare_text_model

    loaded = load_model(str(checkpoints[family]))
    loaded.model.generation_config.exponential_decay_length_penalty = (2, 1.1)
    report = compare_text_model(loaded, all_example_texts()[:4], num_beams=4, max_new_tokens=16)
    assert report.ok, report.kinds()
    assert set(report.kinds()) == {"encoder", "decoder", "cross", "decoder (generate)", "cross (generate)"}


# --- a wrong gather must not match ---------------------------------------------------------------


def _reordering_input(loaded, batch: str, num_beams: int):
    """The first example texts (one, or a padded batch of three) whose beams reorder."""
    candidates = all_example_texts()
    groups = [[t] for t in candidates] if batch == "single" else [candidates[i : i + 3] for i in range(0, 12, 3)]
    for texts in groups:
        inputs, source = tokenize(loaded, texts)
        raw = raw_generate(loaded, inputs, num_beams)
        if beams_reorder(raw.beam_indices):
            return inputs, source, raw
    pytest.fail("no example input whose beams reorder")


@pytest.mark.parametrize("batch", ["single", "padded"])
@pytest.mark.parametrize("num_beams", [3, 4])
@pytest.mark.parametrize("family", SEQ2SEQ_FAMILIES)
def test_reusing_the_final_beam_for_every_step_does_not_match(tiny_model, family, num_beams, batch):
    loaded = tiny_model(family)
    inputs, source, raw = _reordering_input(loaded, batch, num_beams)
    sequences = raw.sequences
    steps, source_length = sequences.shape[1] - 1, inputs["input_ids"].shape[1]
    forced = teacher_forced(loaded, inputs, sequences)
    real = real_steps(sequences, loaded.config.eos_token_id)
    right_rows = raw.beam_indices[:, :steps]  # (B, T)

    right = gather(raw.cross_attentions, right_rows, source_length)
    assert row_error(forced["cross"], right, real) <= TOLERANCE
    wrong = gather(raw.cross_attentions, final_beam_rows(right_rows), source_length)
    assert row_error(forced["cross"], wrong, real) > 1e-4
    wrong_decoder = gather(raw.decoder_attentions, final_beam_rows(right_rows), steps)
    assert row_error(forced["decoder"], wrong_decoder, real) > 1e-4


@pytest.mark.parametrize("mistake", ["final beam", "row b"])
@pytest.mark.parametrize("family", SEQ2SEQ_FAMILIES)
def test_the_check_catches_a_wrong_gather_in_the_library(tiny_model, monkeypatch, family, mistake):
    """Break generate_with_attention's choice of rows: its maps must stop matching teacher forcing."""
    loaded = tiny_model(family)
    inputs, source, raw = _reordering_input(loaded, "padded", 4)
    right = generation._rows_per_step
    if mistake == "final beam":
        monkeypatch.setattr(generation, "_rows_per_step", lambda bi, b, s: final_beam_rows(right(bi, b, s)))
    else:  # the greedy rule (row b) applied to beam search
        monkeypatch.setattr(generation, "_rows_per_step", lambda bi, b, s: right(None, b, s))
    result = generate_with_attention(loaded, inputs, source, num_beams=4, max_new_tokens=MAX_NEW_TOKENS)
    forced = teacher_forced(loaded, inputs, result.sequences)
    real = real_steps(result.sequences, loaded.config.eos_token_id)
    assert row_error(forced["cross"], result.maps["cross"].weights, real) > 1e-4
