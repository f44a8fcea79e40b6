"""neuron_terms: one attention row taken apart; its softmax must be the library's row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DECODER_FAMILIES, MORE_ENCODER_FAMILIES, TEXT_FAMILIES

from attn_demos.adapters.loading import load_model
from attn_demos.adapters.neuron import neuron_terms
from attn_demos.errors import BadInputError

TEXT = "the dog is in the house and the cat sat on the mat"


def check_row(terms: dict) -> None:
    np.testing.assert_allclose(terms["products"].sum(-1), terms["dots"], atol=1e-5)
    np.testing.assert_allclose(terms["softmax"], terms["library"], atol=1e-6, rtol=0)
    assert terms["max_abs_err"] <= 1e-6
    assert terms["softmax"][~terms["mask"]].sum() == 0
    assert terms["q"].shape == terms["k"].shape[1:]


def test_minilm_cell(minilm_path):
    loaded = load_model(str(minilm_path))
    terms = neuron_terms(loaded, TEXT, "encoder", layer=3, head=5, query_index=2)
    check_row(terms)
    assert terms["k"].shape == (len(terms["key_tokens"]), 32) and terms["scale"] == pytest.approx(32**-0.5)
    # the logits are the scaled dot products (no bias in BERT)
    np.testing.assert_allclose(terms["logits"], terms["dots"] * terms["scale"], atol=1e-5)


@pytest.mark.parametrize("family", DECODER_FAMILIES + MORE_ENCODER_FAMILIES + tuple(f for f in TEXT_FAMILIES if f not in ("bart", "marian", "t5")))
def test_every_family_cell_matches_the_library(tiny_model, family):
    loaded = tiny_model(family)
    kind = "decoder" if loaded.is_decoder_only else "encoder"
    layer = loaded.config.num_hidden_layers - 1 if hasattr(loaded.config, "num_hidden_layers") else 1
    terms = neuron_terms(loaded, TEXT, kind, layer=layer, head=1, query_index=6)
    check_row(terms)
    if loaded.is_decoder_only:
        assert not terms["mask"][7:].any(), "causal"
    if family == "gemma2":
        assert terms["softcap"] == loaded.config.attn_logit_softcapping
        assert np.abs(terms["logits"][terms["mask"]]).max() < terms["softcap"]


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
@pytest.mark.parametrize("family", ["t5", "bart"])
def test_seq2seq_cells_with_t5_bias(tiny_model, family, kind):
    loaded = tiny_model(family)
    inputs = dict(loaded.preprocessor(["the cat sat on the mat"], return_tensors="pt"))
    inputs["decoder_input_ids"] = torch.tensor([[0, 5, 6, 7]])
    terms = neuron_terms(loaded, inputs, kind, layer=1, head=2, query_index=2)
    check_row(terms)
    if family == "t5" and kind != "cross":
        assert np.abs(terms["bias"]).max() > 0  # the relative position bias is part of the logits
        assert terms["scale"] == 1.0


def test_sliding_window_row(tiny_model):
    loaded = tiny_model("mistral")
    terms = neuron_terms(loaded, TEXT, "decoder", layer=0, head=0, query_index=6)
    check_row(terms)
    assert terms["mask"].tolist()[:8] == [False, False, False, False, True, True, True, False]


def test_bad_cells_are_refused(tiny_model):
    loaded = tiny_model("llama")
    with pytest.raises(BadInputError, match="layer"):
        neuron_terms(loaded, TEXT, "decoder", layer=9, head=0, query_index=0)
    with pytest.raises(BadInputError, match="no encoder attention"):
        neuron_terms(loaded, TEXT, "encoder", layer=0, head=0, query_index=0)
