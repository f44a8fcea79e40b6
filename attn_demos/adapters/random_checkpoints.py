"""Random-weight checkpoints of every supported family, saved like real ones (safetensors, a
tokenizer or image processor beside them). Tests, benchmarks and offline demos load them through
the same `from_pretrained` path a Hub id takes. Random weights are honest about being random:
every folder's config says `"attn_demos_random_weights": true`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from attn_demos.adapters.tokenizer_training import align_special_ids, build_tokenizer

BASE_WORDS = (
    ". , ? ! ' - the a an of to in and is was it that he she they we you i on for with as at by from "
    "this be are not or his her their what which who when where how why cat dog sat mat house water "
    "der die das und ist ein eine nicht ich du wir sie es mit von zu auf haus katze hund wasser"
).split()

# Shape of each family's test checkpoint: tiny (fast) by default; see scripts/bench.py for real sizes.
TINY = dict(hidden=32, heads=4, layers=2, ffn=64)


def word_level_tokenizer(words: list[str], seq2seq: bool, causal: bool = False) -> transformers.PreTrainedTokenizerFast:
    """A lowercase whole-word tokenizer: BERT-style [CLS] … [SEP], seq2seq-style … </s>, or, for a
    causal language model, <s> … with </s> to end generation and padding on the left."""
    if causal:
        specials = ["<pad>", "<s>", "</s>", "<unk>"]
    elif seq2seq:
        specials = ["<pad>", "</s>", "<unk>"]
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + [w.lower() for w in words]))}
    unk = "<unk>" if seq2seq or causal else "[UNK]"
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if causal:
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
        )
        names = dict(pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>", padding_side="left")
    elif seq2seq:
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
        )
        names = dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    else:
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        names = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=128, **names)


def vocabulary(extra_texts: list[str] = ()) -> list[str]:
    """BASE_WORDS plus every word of `extra_texts`, in first-seen order."""
    words = list(BASE_WORDS)
    for text in extra_texts:
        words += re.findall(r"\w+|[^\w\s]", text.lower())
    return list(dict.fromkeys(words))


def tiny_config(family: str, vocab_size: int, size: dict = TINY):
    """A small config of each family, initialised wide enough that attention is far from uniform."""
    h, n, layers, ffn = size["hidden"], size["heads"], size["layers"], size["ffn"]
    if family in ("bert", "roberta"):
        cls = transformers.BertConfig if family == "bert" else transformers.RobertaConfig
        extra = dict(pad_token_id=0) if family == "bert" else dict(pad_token_id=0, bos_token_id=2, eos_token_id=3)
        return cls(
            vocab_size=vocab_size, hidden_size=h, num_attention_heads=n, num_hidden_layers=layers,
            intermediate_size=ffn, max_position_embeddings=130, initializer_range=0.3, **extra,
        )
    if family == "distilbert":
        return transformers.DistilBertConfig(
            vocab_size=vocab_size, dim=h, n_heads=n, n_layers=layers, hidden_dim=ffn,
            max_position_embeddings=128, initializer_range=0.3, pad_token_id=0,
        )
    seq2seq_ids = dict(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, forced_eos_token_id=1)
    if family in ("bart", "marian"):
        cls = transformers.BartConfig if family == "bart" else transformers.MarianConfig
        return cls(
            vocab_size=vocab_size, d_model=h, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=n, decoder_attention_heads=n, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
            max_position_embeddings=128, init_std=0.3, bos_token_id=0, **seq2seq_ids,
        )
    if family == "t5":
        return transformers.T5Config(
            vocab_size=vocab_size, d_model=h, d_kv=h // n, d_ff=ffn, num_layers=layers,
            num_decoder_layers=layers, num_heads=n, initializer_factor=1.5, **seq2seq_ids,
        )
    if family == "vit":
        return transformers.ViTConfig(
            image_size=32, patch_size=8, hidden_size=h, num_attention_heads=n, num_hidden_layers=layers,
            intermediate_size=ffn, initializer_range=0.3, num_labels=5,
            id2label={i: name for i, name in enumerate(["cat", "dog", "bird", "car", "tree"])},
        )
    if family in ("xlm-roberta", "electra", "albert"):
        extra = dict(embedding_size=h // 2) if family == "albert" else {}
        cls = {"xlm-roberta": transformers.XLMRobertaConfig, "electra": transformers.ElectraConfig,
               "albert": transformers.AlbertConfig}[family]
        return cls(
            vocab_size=vocab_size, hidden_size=h, num_attention_heads=n, num_hidden_layers=layers,
            intermediate_size=ffn, max_position_embeddings=130, initializer_range=0.3, pad_token_id=0, **extra,
        )
    if family == "deit":
        return transformers.DeiTConfig(
            image_size=32, patch_size=8, hidden_size=h, num_attention_heads=n, num_hidden_layers=layers,
            intermediate_size=ffn, initializer_range=0.3, num_labels=5,
            id2label={i: name for i, name in enumerate(["cat", "dog", "bird", "car", "tree"])},
        )
    if family in CAUSAL_FAMILIES:
        return causal_config(family, vocab_size, size)
    raise ValueError(f"no tiny config for family {family!r}")


# Decoder-only: ids of the causal word-level tokenizer; a sliding window shorter than the example
# texts so that it changes the result; 2 key/value heads for 4 query heads (grouped-query attention).
CAUSAL_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
TINY_WINDOW = 3
CAUSAL_FAMILIES = ("gpt2", "llama", "qwen2", "qwen3", "mistral", "gemma2", "phi3", "gpt_neox")


def causal_config(family: str, vocab_size: int, size: dict = TINY):
    """A small decoder-only config; every factor the family has (window, soft-cap, partial rotary,
    inverse-layer scale) set so that ignoring it changes the attention."""
    h, n, layers, ffn = size["hidden"], size["heads"], size["layers"], size["ffn"]
    common = dict(vocab_size=vocab_size, initializer_range=0.3, tie_word_embeddings=False, **CAUSAL_IDS)
    if family == "gpt2":
        return transformers.GPT2Config(
            n_embd=h, n_layer=layers, n_head=n, n_inner=ffn, n_positions=128, scale_attn_by_inverse_layer_idx=True,
            **common,
        )
    if family == "gpt_neox":
        return transformers.GPTNeoXConfig(
            hidden_size=h, num_hidden_layers=layers, num_attention_heads=n, intermediate_size=ffn,
            max_position_embeddings=128, rotary_pct=0.5, rotary_emb_base=10000, **common,
        )
    llama_like = dict(
        hidden_size=h, num_hidden_layers=layers, num_attention_heads=n, num_key_value_heads=n // 2,
        intermediate_size=ffn, max_position_embeddings=128, **common,
    )
    if family == "llama":
        return transformers.LlamaConfig(**llama_like)
    if family == "qwen2":  # q/k/v biases; the second layer slides
        return transformers.Qwen2Config(use_sliding_window=True, sliding_window=TINY_WINDOW, max_window_layers=1, **llama_like)
    if family == "qwen3":  # per-head q/k RMSNorm
        return transformers.Qwen3Config(head_dim=h // n, **llama_like)
    if family == "mistral":
        return transformers.MistralConfig(sliding_window=TINY_WINDOW, **llama_like)
    if family == "gemma2":  # sliding layer 0, global layer 1; scale 1/√16 with head size 8; logits capped at 5
        return transformers.Gemma2Config(
            head_dim=h // n, query_pre_attn_scalar=16, attn_logit_softcapping=5.0, sliding_window=TINY_WINDOW,
            **llama_like,
        )
    if family == "phi3":  # fused qkv_proj, half the channels rotated, sliding window
        return transformers.Phi3Config(partial_rotary_factor=0.5, sliding_window=TINY_WINDOW, **llama_like)
    raise ValueError(f"no tiny config for family {family!r}")


MODEL_CLASSES = {
    "bert": "BertModel",
    "roberta": "RobertaModel",
    "distilbert": "DistilBertForQuestionAnswering",
    "bart": "BartForConditionalGeneration",
    "marian": "MarianMTModel",
    "t5": "T5ForConditionalGeneration",
    "vit": "ViTForImageClassification",
    "xlm-roberta": "XLMRobertaModel",
    "electra": "ElectraModel",
    "albert": "AlbertModel",
    "deit": "DeiTForImageClassification",
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "mistral": "MistralForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "gpt_neox": "GPTNeoXForCausalLM",
}
VISION_FAMILIES = ("vit", "deit")


def build_checkpoint(
    family: str, folder: str | Path, seed: int = 0, extra_texts: list[str] = (), config=None, model_class: str | None = None,
    **config_changes,
) -> Path:
    """Build a random-weight model of `family`, save it with its tokenizer/processor, return the folder.

    model_class: another head of the family (e.g. "BertLMHeadModel"; default MODEL_CLASSES[family]);
    config_changes: set on the config first (e.g. is_decoder=True)."""
    folder = Path(folder)
    torch.manual_seed(seed)
    if config is None:  # tiny: a tokenizer of the family's real kind (None for images), its ids in the config
        tokenizer = build_tokenizer(family, [" ".join(BASE_WORDS), *extra_texts], folder)
        config = tiny_config(family, vocab_size=len(tokenizer) if tokenizer is not None else 0)
        if tokenizer is not None:
            align_special_ids(config, tokenizer)
    else:  # a given (real-size) config carries the WordLevel tokenizer's ids (scripts/benchmark/real_size_configs.py)
        seq2seq = family in ("bart", "marian", "t5")
        words = vocabulary(list(extra_texts))
        causal = family in CAUSAL_FAMILIES
        tokenizer = None if family in VISION_FAMILIES else word_level_tokenizer(words, seq2seq, causal=causal)
    config.attn_demos_random_weights = True
    for name, value in config_changes.items():
        setattr(config, name, value)
    model = getattr(transformers, model_class or MODEL_CLASSES[family])(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    else:
        processor = transformers.ViTImageProcessor(
            size={"height": config.image_size, "width": config.image_size},
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
        processor.save_pretrained(folder)
    return folder
