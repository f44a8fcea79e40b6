"""Tokenizers of each family's real kind, trained offline on the project's texts, and how word
pooling and token labels meet their pieces: "##" (WordPiece), "▁" (SentencePiece), "Ġ" and byte
characters (byte-level BPE), "<0xE6>" (byte fallback)."""

from __future__ import annotations

import pytest
from tokenizers import pre_tokenizers
from transformers import AutoConfig, AutoTokenizer

from attn_demos.adapters.extract import token_labels
from attn_demos.adapters.random_checkpoints import BASE_WORDS
from attn_demos.adapters.tokenizer_training import FAMILY_TOKENIZER, build_tokenizer
from attn_demos.core.pooling import (
    BYTE_OF_CHARACTER,
    display_tokens,
    piece_bytes,
    piece_texts,
    word_groups,
    word_labels,
)
from attn_demos.render.tokens import display_pieces
from attn_demos.tasks.examples import all_example_texts

SCHEMES = {  # one family per scheme, with the class AutoTokenizer must load back
    "bert": "BertTokenizer",
    "roberta": "RobertaTokenizer",
    "gpt2": "GPT2Tokenizer",
    "t5": "T5Tokenizer",
    "marian": "MarianTokenizer",
    "albert": "AlbertTokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
    "llama": "LlamaTokenizer",
}
SENTENCE = "The café sells state-of-the-art 日本 tea."
# The words a person reads in each scheme, derived by hand from how each kind of tokenizer splits:
# BERT-uncased lowercases, strips accents, splits punctuation and each CJK character (unknown here);
# SentencePiece and byte-level BPE keep "state-of-the-art" and "tea." whole (words end at spaces);
# byte-level BPE and byte fallback spell 日本 in bytes; the unigram models know no 日/本 (<unk>).
EXPECTED_WORDS = {
    "bert": ["[CLS]", "the", "cafe", "sells", "state", "-", "of", "-", "the", "-", "art", "[UNK]", "[UNK]", "tea",
             ".", "[SEP]"],
    "roberta": ["<s>", "The", "café", "sells", "state-of-the-art", "日本", "tea.", "</s>"],
    "gpt2": ["The", "café", "sells", "state-of-the-art", "日本", "tea."],
    "t5": ["The", "café", "sells", "state-of-the-art", "<unk>", "tea.", "</s>"],
    "marian": ["The", "café", "sells", "state-of-the-art", "<unk>", "tea.", "</s>"],
    "albert": ["[CLS]", "the", "cafe", "sells", "state-of-the-art", "<unk>", "tea.", "[SEP]"],
    "xlm-roberta": ["<s>", "The", "café", "sells", "state-of-the-art", "<unk>", "tea.", "</s>"],
    "llama": ["<s>", "The", "café", "sells", "state-of-the-art", "日本", "tea."],
}


def training_texts() -> list[str]:
    return [" ".join(BASE_WORDS), *all_example_texts()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    return {family: build_tokenizer(family, training_texts(), root / family) for family in SCHEMES}


@pytest.mark.parametrize("family", SCHEMES)
def test_each_scheme_loads_back_as_the_real_class(trained, family):
    tokenizer = trained[family]
    assert type(tokenizer).__name__ == SCHEMES[family]
    assert 300 <= len(tokenizer) <= 1000
    ids = tokenizer("the cat")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    first, last = {"bert": ("[CLS]", "[SEP]"), "albert": ("[CLS]", "[SEP]"), "roberta": ("<s>", "</s>"),
                   "xlm-roberta": ("<s>", "</s>"), "llama": ("<s>", None), "gpt2": (None, None),
                   "t5": (None, "</s>"), "marian": (None, "</s>")}[family]
    assert tokens[0] == first if first else not tokens[0].startswith("<")
    assert tokens[-1] == last if last else tokens[-1] in ("▁cat", "Ġcat", "cat")
    assert tokenizer.pad_token is not None


def test_files_of_the_sentencepiece_schemes(trained, tmp_path):
    build_tokenizer("t5", training_texts(), tmp_path / "t5")
    build_tokenizer("marian", training_texts(), tmp_path / "marian")
    assert (tmp_path / "t5" / "spiece.model").is_file()
    assert {"source.spm", "target.spm", "vocab.json"} <= {p.name for p in (tmp_path / "marian").iterdir()}
    assert "<extra_id_0>" in trained["t5"].get_vocab()
    marian = trained["marian"]
    assert marian.pad_token_id == len(marian) - 1  # Marian's pad is its last id


def test_decoder_only_schemes_pad_on_the_left(trained):
    for family in ("gpt2", "llama"):
        tokenizer = trained[family]
        assert tokenizer.padding_side == "left"
        batch = tokenizer(["the cat sat on the mat", "the"], padding=True)
        assert batch["attention_mask"][1][0] == 0 and batch["attention_mask"][1][-1] == 1
    assert trained["llama"].pad_token == "<pad>" and trained["llama"].pad_token_id == 3
    assert trained["bert"].padding_side == "right"  # a control: encoders pad on the right


def test_byte_fallback_spells_unknown_characters_in_bytes(trained):
    tokens = trained["llama"].tokenize("日本")
    assert tokens == ["▁", "<0xE6>", "<0x97>", "<0xA5>", "<0xE6>", "<0x9C>", "<0xAC>"]  # "日本".encode() == e6 97 a5 e6 9c ac


@pytest.mark.parametrize("family", SCHEMES)
def test_example_texts_tokenize_without_unknown_pieces(trained, family):
    tokenizer = trained[family]
    for text in all_example_texts():
        assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"], (family, text)


@pytest.mark.parametrize("family", ["bert", "roberta", "t5", "marian", "llama"])
def test_training_is_deterministic(tmp_path, family):
    first = build_tokenizer(family, training_texts(), tmp_path / "one")
    second = build_tokenizer(family, training_texts(), tmp_path / "two")
    assert first.get_vocab() == second.get_vocab()
    text = " ".join(all_example_texts()[:5])
    assert first(text)["input_ids"] == second(text)["input_ids"]


def test_every_family_has_a_scheme_and_unknown_ones_are_refused(tmp_path):
    families = {"bert", "roberta", "distilbert", "bart", "marian", "t5", "gpt2", "llama", "qwen2", "qwen3",
                "mistral", "gemma2", "phi3", "gpt_neox", "albert", "electra", "xlm-roberta", "deit", "vit"}
    assert families <= set(FAMILY_TOKENIZER)
    assert build_tokenizer("deit", training_texts(), tmp_path / "deit") is None
    with pytest.raises(ValueError, match="no tokenizer scheme for family 'wav2vec2'"):
        build_tokenizer("wav2vec2", training_texts(), tmp_path / "x")


# ------------------------------------------------- word pooling and labels on every scheme ------


@pytest.mark.parametrize("family", SCHEMES)
def test_pieces_merge_into_the_words_a_person_reads(trained, family):
    tokenizer = trained[family]
    tokens = token_labels(tokenizer, tokenizer(SENTENCE)["input_ids"])
    groups = word_groups(tokens)
    assert word_labels(tokens, groups) == EXPECTED_WORDS[family]
    assert sorted(i for group in groups for i in group) == list(range(len(tokens)))
    shown = "".join(display_pieces(tokens)).strip()
    readable = " ".join(w for w in EXPECTED_WORDS[family])
    assert shown == readable  # the highlighted pieces read as the words, one space apart
    assert "Ã" not in "".join(display_tokens(tokens))  # no byte-alphabet mojibake in labels


MARKERS = ("Ġ", "▁", "<0x")  # byte-level BPE's space, SentencePiece's word start, byte fallback


def written_as_text(label: str) -> bool:
    """A label a person reads: no tokenizer marker in it, no WordPiece "##" before it, not empty."""
    return bool(label) and not any(marker in label for marker in MARKERS) and not label.startswith("##")


@pytest.mark.parametrize("family", SCHEMES)
def test_every_schemes_pieces_become_labels_a_person_reads(trained, family):
    tokenizer = trained[family]
    text = SENTENCE + " It’s  ok?"
    pieces = token_labels(tokenizer, tokenizer(text)["input_ids"])
    labels = display_tokens(pieces)
    assert len(labels) == len(pieces) and all(written_as_text(label) for label in labels), labels
    marker = {"bert": "##", "roberta": "Ġ", "gpt2": "Ġ", "llama": "<0x"}.get(family, "▁")
    assert any(marker in piece for piece in pieces)  # control: the tokenizer's own pieces carry the marker
    if family in ("roberta", "gpt2", "llama"):  # 日本 and ’ spelled in bytes: the last piece of each shows it
        assert {"日", "本", "’"} <= {label[0] for label in labels} and "日 1/3" in labels


def test_byte_fallback_pieces_merge_into_the_character_they_complete():
    """Llama-style: ’ is <0xE2><0x80><0x99>; the last piece shows it, the ones before say which part."""
    pieces = ["<s>", "▁It", "<0xE2>", "<0x80>", "<0x99>", "s", "▁", "<0x3F>", "▁caf", "<0xC3>", "<0xA9>", "▁x", "<0xE2>"]
    assert display_tokens(pieces) == ["<s>", "It", "’ 1/3", "’ 2/3", "’", "s", "␣", "?", "caf", "é 1/2", "é", "x", "�"]
    assert display_tokens(["Ġtown", "Ġcouncil", "ĠĠ"]) == ["town", "council", "␣␣"]
    assert display_tokens(["[CLS]", "token", "##ization", "[SEP]"]) == ["[CLS]", "token", "ization", "[SEP]"]


def test_byte_alphabet_matches_the_byte_level_pre_tokenizer():
    """An independent source: tokenizers' ByteLevel pre-tokenizer writes text in the same alphabet."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    assert set(BYTE_OF_CHARACTER) == set(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(BYTE_OF_CHARACTER.values()) == list(range(256))
    text = "".join(chr(c) for c in range(0x3000) if not 0xD800 <= c < 0xE000) + " 🐈 ½ \n\t"
    (written, _), = byte_level.pre_tokenize_str(text)
    assert bytes(BYTE_OF_CHARACTER[ch] for ch in written).decode("utf-8") == text
    assert BYTE_OF_CHARACTER["Ġ"] == 0x20 and BYTE_OF_CHARACTER["Ċ"] == 0x0A


def test_byte_level_labels_are_text_and_split_characters_name_their_part():
    tokens = ["<s>", "The", "ĠcafÃ©", "Ġcaf", "Ã", "©", "Ċ", "</s>"]
    assert display_tokens(tokens) == ["<s>", "The", "café", "caf", "é 1/2", "é", "↵", "</s>"]
    assert piece_texts(tokens) == ["<s>", "The", "café", "caf", "", "é", "↵", "</s>"]
    assert word_labels(tokens, word_groups(tokens)) == ["<s>", "The", "café", "café", "↵", "</s>"]
    # Controls: WordPiece and SentencePiece pieces lose their markers, and nothing else.
    assert display_tokens(["[CLS]", "Ã©", "##s"]) == ["[CLS]", "Ã©", "s"]
    assert display_tokens(["▁caf", "é"]) == ["caf", "é"]
    assert piece_bytes("<0xC3>", "sentencepiece") == b"\xc3" and piece_bytes("<0xC3>", "bpe") == b"<0xC3>"


def test_explorer_heatmap_labels_are_readable_on_a_byte_level_checkpoint(checkpoints):
    from attn_demos.tasks.explorer import explore

    tokenizer = AutoTokenizer.from_pretrained(checkpoints["roberta"])
    result = explore("The café, über alles", source=str(checkpoints["roberta"]))
    raw = tokenizer.convert_ids_to_tokens(tokenizer("The café, über alles")["input_ids"])
    assert result.tokens == raw and any("Ã" in t for t in raw)  # the library's labels are byte characters
    view = result.view(0, "mean")
    assert view.query_labels == display_tokens(raw) and not any("Ã" in t for t in view.query_labels)
    assert view.query_pieces == raw
    words = result.view(0, "mean", words=True)
    assert words.query_labels == ["<s>", "The", "café,", "über", "alles", "</s>"]
    assert view.verified and words.verified


@pytest.mark.parametrize("family", ["roberta", "bart", "marian"])
def test_checkpoint_configs_use_their_tokenizers_special_ids(checkpoints, family):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    config = AutoConfig.from_pretrained(checkpoints[family])
    assert (config.pad_token_id, config.eos_token_id) == (tokenizer.pad_token_id, tokenizer.eos_token_id)
    start = {"roberta": None, "bart": tokenizer.eos_token_id, "marian": tokenizer.pad_token_id}[family]
    assert getattr(config, "decoder_start_token_id", None) == start
    assert config.vocab_size == len(tokenizer)
