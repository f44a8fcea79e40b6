"""Configs with the sizes of the real checkpoints the demos use, for random-weight stand-ins.

A model built from one of these has the real architecture's layers, widths, heads and vocabulary,
so its forward pass and generate() cost what the real model's do; only the weights are random.
Benchmarks build them (offline) with `build_real_size_checkpoint`. The numbers are those of the
public config.json of each model.
"""

from __future__ import annotations

from pathlib import Path

import transformers

from attn_demos.adapters.random_checkpoints import build_checkpoint, vocabulary, word_level_tokenizer


def opus_mt_en_de() -> transformers.MarianConfig:
    """Helsinki-NLP/opus-mt-en-de: Marian, 6+6 layers of width 512, static sinusoidal positions."""
    return transformers.MarianConfig(
        vocab_size=58101,
        decoder_vocab_size=58101,
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        max_position_embeddings=512,
        activation_function="swish",
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        pad_token_id=58100,
        decoder_start_token_id=58100,
        eos_token_id=0,
        bos_token_id=0,
        forced_eos_token_id=0,
    )


def distilbert_base_cased_distilled_squad() -> transformers.DistilBertConfig:
    """distilbert/distilbert-base-cased-distilled-squad: 6 layers of width 768, 12 heads, cased vocabulary."""
    return transformers.DistilBertConfig(
        vocab_size=28996,
        dim=768,
        n_layers=6,
        n_heads=12,
        hidden_dim=3072,
        max_position_embeddings=512,
        pad_token_id=0,
    )


def distilbart_cnn_6_6() -> transformers.BartConfig:
    """sshleifer/distilbart-cnn-6-6: BART-large width (1024, 16 heads) with 6 encoder and 6 decoder layers."""
    return transformers.BartConfig(
        vocab_size=50264,
        d_model=1024,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=16,
        decoder_attention_heads=16,
        encoder_ffn_dim=4096,
        decoder_ffn_dim=4096,
        max_position_embeddings=1024,
        activation_function="gelu",
        scale_embedding=False,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=0,
        forced_eos_token_id=2,
    )


def t5_small() -> transformers.T5Config:
    """google-t5/t5-small: 6+6 layers of width 512, 8 heads of 64, 32 relative-position buckets."""
    return transformers.T5Config(
        vocab_size=32128,
        d_model=512,
        d_kv=64,
        d_ff=2048,
        num_layers=6,
        num_decoder_layers=6,
        num_heads=8,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def vit_base_patch16_224() -> transformers.ViTConfig:
    """google/vit-base-patch16-224: 12 layers of width 768 over 14×14 patches of 16 px, 1000 classes."""
    return transformers.ViTConfig(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        image_size=224,
        patch_size=16,
        num_channels=3,
        qkv_bias=True,
        num_labels=1000,
    )


# Hub id -> (family in random_checkpoints, config factory)
REAL_SIZE_CONFIGS = {
    "Helsinki-NLP/opus-mt-en-de": ("marian", opus_mt_en_de),
    "distilbert/distilbert-base-cased-distilled-squad": ("distilbert", distilbert_base_cased_distilled_squad),
    "sshleifer/distilbart-cnn-6-6": ("bart", distilbart_cnn_6_6),
    "google-t5/t5-small": ("t5", t5_small),
    "google/vit-base-patch16-224": ("vit", vit_base_patch16_224),
}

SPECIAL_ID_FIELDS = ("pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id", "forced_eos_token_id")


def with_word_level_ids(family: str, config, extra_texts: list[str] = ()):
    """The config with its special-token ids moved to those of the small WordLevel tokenizer that
    `build_checkpoint` saves beside the weights (sizes unchanged), so that padding, the decoder's
    start and end of sequence mean the same token to the model and to the tokenizer."""
    if family == "vit":
        return config
    seq2seq = family in ("bart", "marian", "t5")
    tokenizer = word_level_tokenizer(vocabulary(list(extra_texts)), seq2seq)
    if tokenizer.pad_token_id >= config.vocab_size or len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer's {len(tokenizer)} tokens do not fit the model's {config.vocab_size}")
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if seq2seq:
        ids.update(
            eos_token_id=tokenizer.eos_token_id,
            forced_eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,  # as in T5: decoding starts from padding
            bos_token_id=tokenizer.pad_token_id,
        )
    for field in SPECIAL_ID_FIELDS:
        if hasattr(config, field):  # T5's config has no bos/forced ids: generation_config keeps those
            setattr(config, field, ids.get(field))
    if hasattr(config, "forced_bos_token_id"):
        config.forced_bos_token_id = None
    return config


def build_real_size_checkpoint(model_id: str, folder: str | Path, seed: int = 0) -> Path:
    """A random-weight checkpoint with the size of `model_id` (a key of REAL_SIZE_CONFIGS), saved
    with a small WordLevel tokenizer (or an image processor) like any other checkpoint."""
    family, make_config = REAL_SIZE_CONFIGS[model_id]
    return build_checkpoint(family, folder, seed=seed, config=with_word_level_ids(family, make_config()))
