"""The seq2seq tasks' check pass reuses the encoder outputs of generate(): the numbers must be
bit for bit those of the former path (a full teacher-forced pass that encodes the source again),
and generate() must produce what it produces when it runs the encoder itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attn_demos.adapters.extract import forward_with_attention, teacher_forced_inputs
from attn_demos.adapters.families import CROSS, DECODER
from attn_demos.adapters.generation import generate_with_attention, run_encoder
from attn_demos.adapters.loading import load_model
from attn_demos.tasks.inputs import tokenize_text
from attn_demos.tasks.seq2seq import run_seq2seq

TEXT = "the cat sat on the mat and the dog sat in the house"


@pytest.mark.parametrize("family", ["marian", "bart", "t5"])
@pytest.mark.parametrize("beams", [1, 3])
def test_reused_encoder_gives_identical_numbers(checkpoints, family, beams):
    loaded = load_model(str(checkpoints[family]))
    result = run_seq2seq(loaded, TEXT, beams, 6)

    # The former path, written out: generate, then encode the source again in a full forced pass.
    inputs, source, _ = tokenize_text(loaded, TEXT)
    generated = generate_with_attention(loaded, inputs, source, beams, 6)
    full = forward_with_attention(loaded, teacher_forced_inputs(inputs, generated.sequences), source, generated.target)
    real = generated.target.mask[0].numpy()  # (T,)
    cross = full.recomputed[CROSS][0].numpy()[:, :, real]  # (L, H, T, S)
    decoder = full.recomputed[DECODER][0].numpy()[:, :, real][:, :, :, real]  # (L, H, T, T)
    assert np.array_equal(result.cross_recomputed, cross)
    assert np.array_equal(result.decoder_recomputed, decoder)
    assert result.cross_view().verified


@pytest.mark.parametrize("beams", [1, 3])
def test_generate_with_given_encoder_outputs_is_plain_generate(checkpoints, beams):
    loaded = load_model(str(checkpoints["bart"]))
    inputs, source, _ = tokenize_text(loaded, TEXT)
    ours = generate_with_attention(loaded, inputs, source, beams, 6)
    with torch.no_grad():
        plain = loaded.model.generate(
            **inputs,
            num_beams=beams,
            max_new_tokens=6,
            do_sample=False,
            output_attentions=True,
            output_scores=beams > 1,
            return_dict_in_generate=True,
        )
    assert torch.equal(ours.sequences, plain.sequences)
    assert torch.equal(ours.scores, plain.sequences_scores) if beams > 1 else ours.scores is None
    if beams == 1:  # row t of the gathered cross-attention is step t's, for every layer
        for t, step in enumerate(plain.cross_attentions):
            for layer, weights in enumerate(step):  # (1, H, 1, S)
                assert torch.equal(ours.maps[CROSS].weights[0, layer, :, t], weights[0, :, -1])
    # generate() expands the encoder outputs per beam; the kept ones stay (B, S, D).
    assert ours.encoder_outputs.last_hidden_state.shape[0] == 1


def test_control_other_encoder_outputs_change_the_numbers(checkpoints):
    # The forced pass really reads the reused encoder outputs: another source's give other numbers.
    loaded = load_model(str(checkpoints["bart"]))
    inputs, source, _ = tokenize_text(loaded, TEXT)
    other, _, _ = tokenize_text(loaded, "a dog is in the water")
    generated = generate_with_attention(loaded, inputs, source, 1, 6)
    forced = teacher_forced_inputs(inputs, generated.sequences)
    mine = forward_with_attention(
        loaded, {**forced, "encoder_outputs": generated.encoder_outputs}, source, generated.target
    )
    with torch.no_grad():
        swapped = run_encoder(loaded, other)
    padded = torch.zeros_like(generated.encoder_outputs.last_hidden_state)  # (1, S, D)
    length = min(padded.shape[1], swapped.last_hidden_state.shape[1])
    padded[:, :length] = swapped.last_hidden_state[:, :length]
    replaced = generated.encoder_outputs.__class__(
        last_hidden_state=padded, attentions=generated.encoder_outputs.attentions
    )
    theirs = forward_with_attention(loaded, {**forced, "encoder_outputs": replaced}, source, generated.target)
    assert not np.allclose(mine.recomputed[CROSS].numpy(), theirs.recomputed[CROSS].numpy())
