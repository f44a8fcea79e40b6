"""Real-size configs: the parameter counts the model cards publish, special ids that agree with
the small tokenizer saved beside the random weights, and the real limits and generation settings
saved with them."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from attn_demos.adapters.random_checkpoints import MODEL_CLASSES, vocabulary, word_level_tokenizer
from attn_demos.adapters.real_size_configs import (
    DECODER_ONLY,
    REAL_SIZE_CONFIGS,
    build_real_size_checkpoint,
    with_word_level_ids,
)

# Published sizes (model cards / papers), in millions of parameters.
PUBLISHED_MILLIONS = {
    "Helsinki-NLP/opus-mt-en-de": 74.4,
    "distilbert/distilbert-base-cased-distilled-squad": 65.2,
    "sshleifer/distilbart-cnn-6-6": 230,
    "google-t5/t5-small": 60.5,
    "google/vit-base-patch16-224": 86.6,
    "HuggingFaceTB/SmolLM2-135M": 135,
    "Qwen/Qwen2.5-0.5B": 494,
}


@pytest.mark.parametrize("model_id", sorted(REAL_SIZE_CONFIGS))
def test_parameter_count_matches_the_published_size(model_id):
    real = REAL_SIZE_CONFIGS[model_id]
    with torch.device("meta"):  # shapes only: no memory, no time
        model = getattr(transformers, real.model_class or MODEL_CLASSES[real.family])(real.make_config())
    millions = sum(p.numel() for p in model.parameters()) / 1e6  # tied embeddings count once
    assert millions == pytest.approx(PUBLISHED_MILLIONS[model_id], rel=0.02)


@pytest.mark.parametrize("model_id", sorted(m for m, real in REAL_SIZE_CONFIGS.items() if real.family != "vit"))
def test_special_ids_are_the_tokenizers(model_id):
    family = REAL_SIZE_CONFIGS[model_id].family
    config = with_word_level_ids(family, REAL_SIZE_CONFIGS[model_id].make_config())
    tokenizer = word_level_tokenizer(vocabulary(), seq2seq=family in ("bart", "marian", "t5", *DECODER_ONLY))
    assert config.pad_token_id == tokenizer.pad_token_id
    assert len(tokenizer) < config.vocab_size  # every token id the tokenizer makes has an embedding
    if config.is_encoder_decoder:
        assert config.eos_token_id == tokenizer.eos_token_id
        assert config.decoder_start_token_id < len(tokenizer)


def test_sizes_survive_the_id_change():
    entry = REAL_SIZE_CONFIGS["Helsinki-NLP/opus-mt-en-de"]
    real, moved = entry.make_config(), with_word_level_ids(entry.family, entry.make_config())
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


def test_a_saved_stand_in_keeps_the_real_limits_and_generation_settings(tmp_path):
    # Marian: the smallest seq2seq stand-in (74 M parameters, ~300 MB written).
    folder = build_real_size_checkpoint("Helsinki-NLP/opus-mt-en-de", tmp_path / "marian")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert tokenizer.model_max_length == 512  # the word-level tokenizer alone says 128
    long_text = " ".join(["the"] * 600)
    assert len(tokenizer(long_text, truncation=True)["input_ids"]) == 512
    saved = json.loads((folder / "generation_config.json").read_text())
    assert saved["num_beams"] == 4 and saved["max_length"] == 512
    assert saved["bad_words_ids"] == [[tokenizer.pad_token_id]]
    generation = transformers.GenerationConfig.from_pretrained(folder)
    assert generation.num_beams == 4  # what generate() uses when the caller does not say


def test_distilbart_generation_settings_are_the_published_ones():
    settings = REAL_SIZE_CONFIGS["sshleifer/distilbart-cnn-6-6"].generation
    assert settings == dict(
        num_beams=4, min_length=56, max_length=142, no_repeat_ngram_size=3, length_penalty=2.0, early_stopping=True
    )
    assert REAL_SIZE_CONFIGS["sshleifer/distilbart-cnn-6-6"].max_length == 1024
    assert REAL_SIZE_CONFIGS["distilbert/distilbert-base-cased-distilled-squad"].max_length == 512
