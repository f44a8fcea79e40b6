"""Real-size configs: the parameter counts the model cards publish, and special ids that agree
with the small tokenizer saved beside the random weights."""

from __future__ import annotations

import pytest
import torch
import transformers

from attn_demos.adapters.random_checkpoints import MODEL_CLASSES, vocabulary, word_level_tokenizer
from attn_demos.adapters.real_size_configs import REAL_SIZE_CONFIGS, with_word_level_ids

# Published sizes (model cards / papers), in millions of parameters.
PUBLISHED_MILLIONS = {
    "Helsinki-NLP/opus-mt-en-de": 74.4,
    "distilbert/distilbert-base-cased-distilled-squad": 65.2,
    "sshleifer/distilbart-cnn-6-6": 230,
    "google-t5/t5-small": 60.5,
    "google/vit-base-patch16-224": 86.6,
}


@pytest.mark.parametrize("model_id", sorted(REAL_SIZE_CONFIGS))
def test_parameter_count_matches_the_published_size(model_id):
    family, make_config = REAL_SIZE_CONFIGS[model_id]
    with torch.device("meta"):  # shapes only: no memory, no time
        model = getattr(transformers, MODEL_CLASSES[family])(make_config())
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert millions == pytest.approx(PUBLISHED_MILLIONS[model_id], rel=0.02)


@pytest.mark.parametrize("model_id", sorted(m for m, (family, _) in REAL_SIZE_CONFIGS.items() if family != "vit"))
def test_special_ids_are_the_tokenizers(model_id):
    family, make_config = REAL_SIZE_CONFIGS[model_id]
    config = with_word_level_ids(family, make_config())
    tokenizer = word_level_tokenizer(vocabulary(), seq2seq=family in ("bart", "marian", "t5"))
    assert config.pad_token_id == tokenizer.pad_token_id
    assert len(tokenizer) < config.vocab_size  # every token id the tokenizer makes has an embedding
    if config.is_encoder_decoder:
        assert config.eos_token_id == tokenizer.eos_token_id
        assert config.decoder_start_token_id < len(tokenizer)


def test_sizes_survive_the_id_change():
    family, make_config = REAL_SIZE_CONFIGS["Helsinki-NLP/opus-mt-en-de"]
    real, moved = make_config(), with_word_level_ids(family, make_config())
    for field in (
        "vocab_size",
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "encoder_ffn_dim",
        "max_position_embeddings",
    ):
        assert getattr(moved, field) == getattr(real, field)
    assert real.pad_token_id == 58100 and moved.pad_token_id == 0
