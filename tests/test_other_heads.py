"""Other heads of supported families: causal-LM heads of encoder families (is_decoder=True) get
their causal mask, and decoder-only heads of encoder-decoder families run, checked from weights."""

from __future__ import annotations

import pytest

from attn_demos.adapters.compare import compare_text_model
from attn_demos.adapters.loading import load_model
from attn_demos.adapters.random_checkpoints import build_checkpoint
from attn_demos.tasks.examples import all_example_texts

TEXTS = ["the cat sat on the mat", "a dog", "the dog is in the house and the cat sat on the mat"]
HEADS = {
    "bert": "BertLMHeadModel",
    "roberta": "RobertaForCausalLM",
    "electra": "ElectraForCausalLM",
    "xlm-roberta": "XLMRobertaForCausalLM",
    "bart": "BartForCausalLM",
    "marian": "MarianForCausalLM",
}


@pytest.fixture(scope="module")
def causal_heads(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    texts = all_example_texts()
    return {
        family: build_checkpoint(family, root / family, extra_texts=texts, model_class=cls, is_decoder=True)
        for family, cls in HEADS.items()
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("family", list(HEADS))
def test_causal_lm_heads_of_other_families_verify(causal_heads, family, dtype):
    loaded = load_model(str(causal_heads[family]), dtype=dtype)
    assert loaded.is_decoder_only
    report = compare_text_model(loaded, TEXTS)
    assert report.ok, f"{family}: {report.kinds()}"
    assert set(report.kinds()) == {"decoder"}
    assert len(report.results) == loaded.config.num_hidden_layers


def test_an_encoder_recomputation_of_a_causal_head_does_not_match(causal_heads):
    """The control: the same BERT decoder recomputed without its causal mask (as an encoder)."""
    import dataclasses

    loaded = load_model(str(causal_heads["bert"]))
    as_encoder = dataclasses.replace(loaded, family=dataclasses.replace(loaded.family, decoder_only=False))
    report = compare_text_model(as_encoder, TEXTS)
    assert not report.ok and report.max_abs_err > 0.1
