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


def word_level_tokenizer(words: list[str], seq2seq: bool) -> transformers.PreTrainedTokenizerFast:
    """A lowercase whole-word tokenizer: BERT-style [CLS] … [SEP] or seq2seq-style … </s>."""
    specials = ["<pad>", "</s>", "<unk>"] if seq2seq else ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + [w.lower() for w in words]))}
    unk = "<unk>" if seq2seq else "[UNK]"
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if seq2seq:
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
    raise ValueError(f"no tiny config for family {family!r}")


MODEL_CLASSES = {
    "bert": "BertModel",
    "roberta": "RobertaModel",
    "distilbert": "DistilBertForQuestionAnswering",
    "bart": "BartForConditionalGeneration",
    "marian": "MarianMTModel",
    "t5": "T5ForConditionalGeneration",
    "vit": "ViTForImageClassification",
}


def build_checkpoint(family: str, folder: str | Path, seed: int = 0, extra_texts: list[str] = (), config=None) -> Path:
    """Build a random-weight model of `family`, save it with its tokenizer/processor, return the folder."""
    folder = Path(folder)
    torch.manual_seed(seed)
    if config is None:  # tiny: a tokenizer of the family's real kind (None for images), its ids in the config
        tokenizer = build_tokenizer(family, [" ".join(BASE_WORDS), *extra_texts], folder)
        config = tiny_config(family, vocab_size=len(tokenizer) if tokenizer is not None else 0)
        if tokenizer is not None:
            align_special_ids(config, tokenizer)
    else:  # a given (real-size) config carries the WordLevel tokenizer's ids (real_size_configs.with_word_level_ids)
        seq2seq = family in ("bart", "marian", "t5")
        tokenizer = None if family == "vit" else word_level_tokenizer(vocabulary(list(extra_texts)), seq2seq)
    config.attn_demos_random_weights = True
    model = getattr(transformers, MODEL_CLASSES[family])(config).eval()
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
