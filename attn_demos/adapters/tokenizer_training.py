"""Real tokenizers for the random-weight checkpoints, trained offline on the project's own texts.

Each family gets a tokenizer of the same kind as its real models', so tests and offline demos meet
the pieces real users meet ("##ing", "▁the", "Ġthe", "<0xC3>"):
  WordPiece (BERT, DistilBERT, ELECTRA): lowercased, [CLS] … [SEP], BertTokenizer.
  Byte-level BPE (RoBERTa, BART): <s> … </s>, "Ġ" marks a leading space, RobertaTokenizer.
  Byte-level BPE, decoder-only (GPT-2, GPT-NeoX, Qwen): <|endoftext|>, padded on the left.
  SentencePiece unigram: T5 (spiece.model, </s>, sentinel <extra_id_N>), Marian (source.spm,
  target.spm, vocab.json for MarianTokenizer), ALBERT ([CLS]/[SEP], lowercased), XLM-R (<s> … </s>).
  SentencePiece BPE with byte fallback (Llama, Mistral, Gemma 2, Phi-3): <s> …, a <pad>, left padding.
Training is deterministic (one thread, fixed settings) and takes well under a second per tokenizer.
"""

from __future__ import annotations

import io
import json
import string
import unicodedata
from pathlib import Path

import transformers

WORDPIECE = "wordpiece"
BYTE_BPE = "byte-bpe"
BYTE_BPE_DECODER = "byte-bpe-decoder"
T5_UNIGRAM = "t5-unigram"
MARIAN_UNIGRAM = "marian-unigram"
ALBERT_UNIGRAM = "albert-unigram"
XLMR_UNIGRAM = "xlmr-unigram"
LLAMA_BPE = "llama-bpe"

FAMILY_TOKENIZER: dict[str, str | None] = {
    "bert": WORDPIECE,
    "distilbert": WORDPIECE,
    "electra": WORDPIECE,
    "albert": ALBERT_UNIGRAM,
    "roberta": BYTE_BPE,
    "bart": BYTE_BPE,
    "xlm-roberta": XLMR_UNIGRAM,
    "gpt2": BYTE_BPE_DECODER,
    "gpt_neox": BYTE_BPE_DECODER,
    "qwen2": BYTE_BPE_DECODER,  # Qwen's real tokenizers are byte-level BPE, not SentencePiece
    "qwen3": BYTE_BPE_DECODER,
    "marian": MARIAN_UNIGRAM,
    "t5": T5_UNIGRAM,
    "llama": LLAMA_BPE,
    "mistral": LLAMA_BPE,
    "gemma2": LLAMA_BPE,
    "phi3": LLAMA_BPE,
    "vit": None,  # image models have an image processor, no tokenizer
    "deit": None,
}

TOKEN_LIMIT = 128  # model_max_length saved with every tokenizer (the tiny models' positions)
WORDPIECE_VOCAB = 700
BYTE_BPE_VOCAB = 700  # 256 byte symbols + merges + specials
UNIGRAM_VOCAB = 500  # a ceiling: SentencePiece stops earlier on a small corpus (hard_vocab_limit off)
LLAMA_VOCAB = 700  # includes the 256 <0xNN> byte-fallback pieces
WORDPIECE_CONTINUE = "##"
T5_EXTRA_IDS = 8  # sentinel tokens <extra_id_0> … (real T5 has 100)
# Letters users type that the example texts lack: every printable ASCII character and common
# accented ones, so "café" or "über" tokenize without <unk> where the scheme has no byte fallback.
ALPHABET_TEXT = " ".join(string.ascii_letters + string.digits + string.punctuation) + " äöüÄÖÜß é è ê à â ç ñ ï ô"


def build_tokenizer(family: str, texts, folder: str | Path):
    """Train the tokenizer kind of `family` on `texts`, save it in `folder`, return it loaded back
    the way a checkpoint loads it (AutoTokenizer). Returns None for families without one."""
    if family not in FAMILY_TOKENIZER:
        raise ValueError(f"no tokenizer scheme for family {family!r}")
    scheme = FAMILY_TOKENIZER[family]
    if scheme is None:
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line for text in list(texts) + [ALPHABET_TEXT] for line in str(text).splitlines() if line.strip()]
    tokenizer = TRAINERS[scheme](lines, folder)
    tokenizer.save_pretrained(folder)
    return transformers.AutoTokenizer.from_pretrained(folder)


def align_special_ids(config, tokenizer) -> None:
    """Point a config's pad/bos/eos/decoder-start ids at the tokenizer's own special tokens."""
    for name in ("pad", "bos", "eos"):
        token_id = getattr(tokenizer, f"{name}_token_id", None)
        if token_id is not None and hasattr(config, f"{name}_token_id"):
            setattr(config, f"{name}_token_id", token_id)
    if getattr(config, "is_encoder_decoder", False):
        # BART starts the decoder with </s>; Marian and T5 with <pad> (as their real checkpoints do).
        start = tokenizer.eos_token_id if config.model_type == "bart" else tokenizer.pad_token_id
        config.decoder_start_token_id = start
        if getattr(config, "forced_eos_token_id", None) is not None:
            config.forced_eos_token_id = tokenizer.eos_token_id


def _train_wordpiece(lines: list[str], folder: Path):
    """A lowercased WordPiece vocabulary (word starts, "##" continuations, every character in both
    forms so nothing seen is [UNK]), learned by BPE merges over BERT's own word split.

    tokenizers' WordPieceTrainer breaks ties in a different order in each process (measured: three
    runs, three vocabularies); its BpeTrainer with a "▁" word-start marker gives the same merges
    every time, and the marker tells word starts from continuations."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=WORDPIECE_VOCAB, show_progress=False))
    characters = sorted({ch for line in lines for ch in normalizer.normalize_str(line) if not ch.isspace()})
    pieces = []
    for piece, _ in sorted(backend.get_vocab().items(), key=lambda item: item[1]):
        text = piece.removeprefix("▁")
        if text:
            pieces.append(text if piece.startswith("▁") else WORDPIECE_CONTINUE + text)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ordered = dict.fromkeys(specials + characters + [WORDPIECE_CONTINUE + ch for ch in characters] + pieces)
    vocab = {piece: i for i, piece in enumerate(ordered)}
    return transformers.BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=TOKEN_LIMIT)


def _train_byte_bpe(lines: list[str], specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=BYTE_BPE_VOCAB, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer)
    state = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return state["vocab"], merges


def _train_roberta_bpe(lines: list[str], folder: Path):
    vocab, merges = _train_byte_bpe(lines, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return transformers.RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=TOKEN_LIMIT)


def _train_decoder_bpe(lines: list[str], folder: Path):
    end = "<|endoftext|>"
    vocab, merges = _train_byte_bpe(lines, [end])
    return transformers.GPT2Tokenizer(
        vocab=vocab, merges=merges, pad_token=end, padding_side="left", model_max_length=TOKEN_LIMIT
    )


def _train_sentencepiece(lines: list[str], path: Path, **options) -> Path:
    """Train a SentencePiece model on `lines` (one thread, fixed seed settings) and write it to `path`."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        character_coverage=1.0,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
        **options,
    )
    path.write_bytes(model.getvalue())
    return path


def _pieces(path: Path) -> list[tuple[str, float]]:
    """(piece, score) of every id of a SentencePiece model, read with sentencepiece itself (no protobuf)."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]


UNIGRAM_OPTIONS = dict(model_type="unigram", vocab_size=UNIGRAM_VOCAB, hard_vocab_limit=False)
# No SentencePiece normalisation table: the tokenizers-backed classes rebuilt from the pieces then
# split text exactly as the .spm file does.
IDENTITY = dict(normalization_rule_name="identity")


def _train_t5(lines: list[str], folder: Path):
    path = _train_sentencepiece(
        lines, folder / "spiece.model", **UNIGRAM_OPTIONS, **IDENTITY, pad_id=0, eos_id=1, unk_id=2, bos_id=-1
    )
    return transformers.T5Tokenizer(vocab=_pieces(path), extra_ids=T5_EXTRA_IDS, model_max_length=TOKEN_LIMIT)


def _train_marian(lines: list[str], folder: Path):
    path = _train_sentencepiece(lines, folder / "source.spm", **UNIGRAM_OPTIONS, eos_id=0, unk_id=1, bos_id=-1, pad_id=-1)
    (folder / "target.spm").write_bytes(path.read_bytes())  # one shared vocabulary, as many opus-mt models have
    vocab = {piece: i for i, (piece, _) in enumerate(_pieces(path))}
    vocab["<pad>"] = len(vocab)  # Marian's pad is the last id
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    return transformers.MarianTokenizer(
        source_spm=str(path), target_spm=str(folder / "target.spm"), vocab=str(folder / "vocab.json"),
        model_max_length=TOKEN_LIMIT,
    )


def _albert_normal(text: str) -> str:
    """What AlbertTokenizer does to text before its pieces: lowercase, accents stripped."""
    decomposed = unicodedata.normalize("NFKD", text.replace("``", '"').replace("''", '"'))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _train_albert(lines: list[str], folder: Path):
    path = _train_sentencepiece(
        [_albert_normal(line) for line in lines], folder / "spiece.model", **UNIGRAM_OPTIONS, **IDENTITY,
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
    )
    return transformers.AlbertTokenizer(vocab=_pieces(path), do_lower_case=True, model_max_length=TOKEN_LIMIT)


def _train_xlmr(lines: list[str], folder: Path):
    path = _train_sentencepiece(
        lines, folder / "sentencepiece.bpe.model", **UNIGRAM_OPTIONS, **IDENTITY, unk_id=0, bos_id=1, eos_id=2, pad_id=-1
    )
    # XLM-R's ids: <s> <pad> </s> <unk>, the SentencePiece pieces after its own three controls, <mask> last.
    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab = specials + _pieces(path)[3:] + [("<mask>", 0.0)]
    return transformers.XLMRobertaTokenizer(vocab=vocab, model_max_length=TOKEN_LIMIT)


BYTE_PIECES = [f"<0x{byte:02X}>" for byte in range(256)]  # SentencePiece's byte-fallback pieces


def _train_llama(lines: list[str], folder: Path):
    """SentencePiece-style BPE ("▁" for spaces) with byte fallback, trained with `tokenizers`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=LLAMA_VOCAB - len(BYTE_PIECES), special_tokens=specials, show_progress=False
    )
    backend.train_from_iterator(lines, trainer)
    state = json.loads(backend.to_str())["model"]
    learned = sorted((i, piece) for piece, i in state["vocab"].items() if piece not in specials)
    ordered = specials + BYTE_PIECES + [piece for _, piece in learned]  # as Llama's: controls, bytes, pieces
    vocab = {piece: i for i, piece in enumerate(ordered)}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return transformers.LlamaTokenizer(
        vocab=vocab, merges=merges, pad_token="<pad>", padding_side="left", add_bos_token=True, add_eos_token=False,
        model_max_length=TOKEN_LIMIT,
    )


TRAINERS = {
    WORDPIECE: _train_wordpiece,
    BYTE_BPE: _train_roberta_bpe,
    BYTE_BPE_DECODER: _train_decoder_bpe,
    T5_UNIGRAM: _train_t5,
    MARIAN_UNIGRAM: _train_marian,
    ALBERT_UNIGRAM: _train_albert,
    XLMR_UNIGRAM: _train_xlmr,
    LLAMA_BPE: _train_llama,
}
