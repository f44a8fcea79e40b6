"""Configs with the sizes of the real checkpoints the demos use, for random-weight stand-ins.

A model built from one of these has the real architecture's layers, widths, heads and vocabulary,
and the real model's limits and defaults that change the work: the tokenizer's model_max_length
and the generation settings of its generation_config.json. Its forward pass and generate() so
cost what the real model's do; only the weights (and the small stand-in tokenizer) differ.
Benchmarks build them (offline) with `build_real_size_checkpoint`. The numbers are those of the
public config.json, tokenizer_config.json and generation_config.json of each model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
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


def smollm2_135m() -> transformers.LlamaConfig:
    """HuggingFaceTB/SmolLM2-135M: Llama, 30 layers of width 576, 9 query heads sharing 3 key/value
    heads (64 each), rotary base 100000, input and output embeddings tied."""
    return transformers.LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        hidden_act="silu",
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )


def qwen2_5_0_5b() -> transformers.Qwen2Config:
    """Qwen/Qwen2.5-0.5B: Qwen2 (q/k/v biases), 24 layers of width 896, 14 query heads sharing 2
    key/value heads (64 each), rotary base 1e6, tied embeddings, no sliding window."""
    return transformers.Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        use_sliding_window=False,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151643,
    )


@dataclass(frozen=True)
class RealSize:
    """What a random-weight stand-in copies from a real checkpoint."""

    family: str  # a family of random_checkpoints (its tokenizer style), or a decoder-only family
    make_config: Callable[[], transformers.PretrainedConfig]
    max_length: int | None  # tokenizer_config.json's model_max_length (None: an image model)
    generation: dict = field(default_factory=dict)  # generation_config.json entries that change the work
    model_class: str | None = None  # for families random_checkpoints does not build (decoder-only)


# Summarization defaults published with distilbart-cnn-6-6 (config.json, as in bart-large-cnn).
DISTILBART_CNN_GENERATION = dict(
    num_beams=4, min_length=56, max_length=142, no_repeat_ngram_size=3, length_penalty=2.0, early_stopping=True
)
# opus-mt-en-de's generation_config.json: 4 beams, up to 512 tokens, the pad token never generated.
OPUS_MT_GENERATION = dict(num_beams=4, max_length=512)
# t5-small's task_specific_params["summarization"] (config.json).
T5_SUMMARIZATION = dict(
    num_beams=4, min_length=30, max_length=200, no_repeat_ngram_size=3, length_penalty=2.0, early_stopping=True
)

# Hub id -> what its stand-in copies
REAL_SIZE_CONFIGS = {
    "Helsinki-NLP/opus-mt-en-de": RealSize("marian", opus_mt_en_de, 512, OPUS_MT_GENERATION),
    "distilbert/distilbert-base-cased-distilled-squad": RealSize(
        "distilbert", distilbert_base_cased_distilled_squad, 512
    ),
    "sshleifer/distilbart-cnn-6-6": RealSize("bart", distilbart_cnn_6_6, 1024, DISTILBART_CNN_GENERATION),
    "google-t5/t5-small": RealSize("t5", t5_small, 512, T5_SUMMARIZATION),
    "google/vit-base-patch16-224": RealSize("vit", vit_base_patch16_224, None),
    "HuggingFaceTB/SmolLM2-135M": RealSize("llama", smollm2_135m, 8192, model_class="LlamaForCausalLM"),
    "Qwen/Qwen2.5-0.5B": RealSize("qwen2", qwen2_5_0_5b, 131072, model_class="Qwen2ForCausalLM"),
}
DECODER_ONLY = ("llama", "qwen2")

SPECIAL_ID_FIELDS = ("pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id", "forced_eos_token_id")


def with_word_level_ids(family: str, config, extra_texts: list[str] = ()):
    """The config with its special-token ids moved to those of the small WordLevel tokenizer that
    `build_checkpoint` saves beside the weights (sizes unchanged), so that padding, the decoder's
    start and end of sequence mean the same token to the model and to the tokenizer."""
    if family == "vit":
        return config
    seq2seq = family in ("bart", "marian", "t5")
    tokenizer = word_level_tokenizer(vocabulary(list(extra_texts)), seq2seq or family in DECODER_ONLY)
    if tokenizer.pad_token_id >= config.vocab_size or len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer's {len(tokenizer)} tokens do not fit the model's {config.vocab_size}")
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if family in DECODER_ONLY:  # a prompt ends where generation starts: no </s> before it
        ids.update(eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    if seq2seq:
        ids.update(
            eos_token_id=tokenizer.eos_token_id,
            forced_eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,  # as in T5: decoding starts from padding
            bos_token_id=tokenizer.pad_token_id,
        )
    for name in SPECIAL_ID_FIELDS:
        if hasattr(config, name):  # T5's config has no bos/forced ids: generation_config keeps those
            setattr(config, name, ids.get(name))
    if hasattr(config, "forced_bos_token_id"):
        config.forced_bos_token_id = None
    return config


def build_real_size_checkpoint(model_id: str, folder: str | Path, seed: int = 0) -> Path:
    """A random-weight checkpoint with the size of `model_id` (a key of REAL_SIZE_CONFIGS), saved
    with a small WordLevel tokenizer (or an image processor) that carries the real model_max_length,
    and the real generation settings."""
    real = REAL_SIZE_CONFIGS[model_id]
    folder = Path(folder)
    config = with_word_level_ids(real.family, real.make_config())
    if real.model_class is None:
        build_checkpoint(real.family, folder, seed=seed, config=config)
    else:
        build_decoder_only(real, config, folder, seed)
    if real.max_length is not None:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        tokenizer.model_max_length = real.max_length
        tokenizer.save_pretrained(folder)
    if real.generation:
        generation = transformers.GenerationConfig.from_pretrained(folder)
        generation.update(**real.generation)
        generation._from_model_config = False  # the published file, not defaults derived from config.json
        if real.family == "marian":  # published as bad_words_ids [[pad]]: padding is never generated
            generation.bad_words_ids = [[config.pad_token_id]]
        generation.save_pretrained(folder)
    return folder


def build_decoder_only(real: RealSize, config, folder: Path, seed: int) -> Path:
    """Random weights of a decoder-only family, saved with the seq2seq-style WordLevel tokenizer."""
    torch.manual_seed(seed)
    config.attn_demos_random_weights = True
    model = getattr(transformers, real.model_class)(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    word_level_tokenizer(vocabulary(), seq2seq=True).save_pretrained(folder)
    return folder
