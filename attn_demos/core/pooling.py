"""Subword pieces -> words: group tokenizer pieces and pool attention matrices over the groups.

Three marker conventions are recognised from the pieces themselves (no tokenizer needed):
  WordPiece (BERT):          "##ing" continues the previous word, any other piece starts one.
  SentencePiece (T5, Marian): "▁the" starts a word, a piece without "▁" continues one.
  Byte-level BPE (RoBERTa, BART, GPT-2): "Ġthe" (or "Ċ", a newline) starts a word, others continue.
Special tokens ([CLS], </s>, <pad>, ...) are always a word of their own.

Pieces are also turned back into the text they stand for: byte-level BPE pieces are strings over
GPT-2's byte alphabet ("ĠcafÃ©" is the bytes of " café"), and SentencePiece byte-fallback pieces
("<0xC3>") are single bytes; both are decoded as UTF-8, a whole word at a time for word labels.
display_tokens is the one place pieces become the labels a person reads (every view, dropdown,
preview and export); exports keep the raw pieces only in fields of their own.
"""

from __future__ import annotations

import codecs
import functools
import re

import numpy as np

WORDPIECE, SENTENCEPIECE, BYTE_BPE = "wordpiece", "sentencepiece", "bpe"
SP_MARK, BPE_SPACE, BPE_NEWLINE, WP_CONTINUE = "▁", "Ġ", "Ċ", "##"

SPACE_SHOWN = "␣"  # a piece that is only spaces, in a label
REPLACEMENT = "\N{REPLACEMENT CHARACTER}"  # bytes that never complete a character
SP_UNKNOWN = frozenset({"<unk>"})  # SentencePiece's unknown piece
SPECIAL_TOKENS = frozenset({
    "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>",
    "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>",  # Gemma
})
_SPECIAL_PATTERN = re.compile(r"^(\[[A-Z_]+\]|<extra_id_\d+>|<\|[a-z_0-9]+\|>)$")  # [CLS], <extra_id_0>, <|endoftext|>


_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # SentencePiece byte fallback: <0xC3>


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, from its definition: the printable bytes "!"–"~", "¡"–"¬" and
    "®"–"ÿ" stand for themselves; the other 68 bytes, in byte order, are written U+0100, U+0101, …
    (so the space 0x20 is "Ġ" U+0120 and the newline 0x0A is "Ċ" U+010A)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(byte): byte for byte in printable}
    others = [byte for byte in range(256) if byte not in printable]
    table.update({chr(0x100 + k): byte for k, byte in enumerate(others)})
    return table


BYTE_OF_CHARACTER = _byte_alphabet()  # byte-level BPE character -> the byte it stands for


def piece_bytes(token: str, scheme: str) -> bytes:
    """The UTF-8 bytes a piece stands for; a word-start marker becomes a space, "##" is dropped."""
    if is_special(token):
        return token.encode()
    if scheme == BYTE_BPE and all(ch in BYTE_OF_CHARACTER for ch in token):
        return bytes(BYTE_OF_CHARACTER[ch] for ch in token)
    if scheme == SENTENCEPIECE:
        byte = _BYTE_PIECE.match(token)
        return bytes([int(byte.group(1), 16)]) if byte else token.replace(SP_MARK, " ").encode()
    if scheme == WORDPIECE and token.startswith(WP_CONTINUE) and len(token) > len(WP_CONTINUE):
        return token[len(WP_CONTINUE):].encode()
    return token.encode()


def _readable(text: str) -> str:
    return text.replace("\n", "↵")


def display_tokens(tokens: list[str]) -> list[str]:
    """Each piece as a person writes it, for every label (heatmaps, head and neuron views, dropdowns,
    previews, exports): markers removed ("Ġtown", "▁The", "##ing" -> "town", "The", "ing"),
    byte-level characters and byte-fallback pieces decoded ("ĠcafÃ©" -> "café", "<0x3F>" -> "?"),
    special tokens as they are ("[CLS]", "</s>").

    A character split over several pieces ("’" as <0xE2><0x80><0x99>) is written on the piece that
    completes it; each piece before holds only part of it and reads "’ 1/3", "’ 2/3" (the character
    and which part), so no label is empty and none shows bytes. Bytes that never complete a
    character read "�". A piece that is only spaces (a bare "▁" or "ĠĠ") reads "␣" per space.

    The labels of the last few token lists are remembered: one click draws several views of the
    same tokens (milliseconds each for a long input)."""
    return list(_display_labels(tuple(tokens)))


@functools.lru_cache(maxsize=8)
def _display_labels(tokens: tuple[str, ...]) -> tuple[str, ...]:
    scheme = piece_scheme(tokens)
    texts = piece_texts(tokens)
    labels = []
    partial: list[int] = []  # pieces so far that hold part of a character the next piece completes

    def close(character: str | None) -> None:  # None: the bytes never made a character
        for part, index in enumerate(partial, start=1):
            labels[index] = REPLACEMENT if character is None else f"{character} {part}/{len(partial) + 1}"
        partial.clear()

    for index, (token, text, new_word) in enumerate(zip(tokens, texts, starts_word(tokens))):
        if new_word:
            close(None)  # a word's unfinished bytes are dropped by piece_texts' decoder
        if is_special(token):
            labels.append(token)
            continue
        data = piece_bytes(token, scheme)
        if not text and data and not data.strip(b" "):
            labels.append(SPACE_SHOWN * len(data))
        elif not text:
            labels.append("")
            partial.append(index)
        else:
            close(text[0])
            labels.append(text)
    close(None)
    return tuple(labels)


def piece_texts(tokens: list[str]) -> list[str]:
    """The text each piece adds to the sentence, markers removed (a word start keeps no space): a
    character split over several pieces belongs to the piece that completes it, so the pieces of
    "café" read "caf", "", "é" for byte-level ["caf", "Ã", "©"]."""
    scheme = piece_scheme(tokens)
    texts = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token, new_word in zip(tokens, starts_word(tokens)):
        if new_word:
            decoder.reset()
        if is_special(token):
            texts.append(token)
            continue
        text = _readable(decoder.decode(piece_bytes(token, scheme)))
        texts.append(text.lstrip(" ") if new_word else text)
    return texts


def is_special(token: str) -> bool:
    """True for tokenizer control tokens such as [CLS], [SEP], <s>, </s>, <pad>, <extra_id_0>."""
    return token in SPECIAL_TOKENS or bool(_SPECIAL_PATTERN.match(token))


def piece_scheme(tokens: list[str]) -> str:
    """Which marker convention the pieces use: SENTENCEPIECE if any starts with "▁" or is a byte
    fallback piece ("<0x98>": a generated continuation may hold no "▁"), BYTE_BPE if any starts
    with "Ġ" or "Ċ", else WORDPIECE (which also covers whole-word vocabularies)."""
    if any(t.startswith(SP_MARK) or _BYTE_PIECE.match(t) for t in tokens if not is_special(t)):
        return SENTENCEPIECE
    if any(t.startswith((BPE_SPACE, BPE_NEWLINE)) for t in tokens if not is_special(t)):
        return BYTE_BPE
    return WORDPIECE


def starts_word(tokens: list[str]) -> list[bool]:
    """For each piece: does it begin a new word? The first piece and every piece after a special
    token begin one (RoBERTa's first word has no "Ġ"). SentencePiece's "<unk>" is an ordinary piece
    here: it stands for characters inside a word ("▁", "<unk>" is one unknown word)."""
    scheme = piece_scheme(tokens)

    def control(token: str) -> bool:
        return is_special(token) and not (scheme == SENTENCEPIECE and token in SP_UNKNOWN)

    flags = []
    for i, token in enumerate(tokens):
        if i == 0 or control(token) or control(tokens[i - 1]):
            flags.append(True)
        elif scheme == WORDPIECE:
            flags.append(not token.startswith(WP_CONTINUE))
        elif scheme == SENTENCEPIECE:
            flags.append(token.startswith(SP_MARK))
        else:
            flags.append(token.startswith((BPE_SPACE, BPE_NEWLINE)))
    return flags


def strip_marker(token: str, scheme: str) -> str:
    """The piece's text without its convention's marker ("##ing" -> "ing", "▁the" -> "the",
    byte-level "ĠcafÃ©" -> "café"); bytes that are not a whole character are replaced by "�"."""
    if is_special(token):
        return token
    return _readable(piece_bytes(token, scheme).decode("utf-8", errors="replace")).lstrip(" ")


def word_groups(tokens: list[str]) -> list[list[int]]:
    """Indices of the pieces that form each word, in order: a partition of range(len(tokens))."""
    groups: list[list[int]] = []
    for index, new_word in enumerate(starts_word(tokens)):
        if new_word:
            groups.append([index])
        else:
            groups[-1].append(index)
    return groups


def word_labels(tokens: list[str], groups: list[list[int]]) -> list[str]:
    """One label per group: its pieces joined without markers (["▁un", "able"] -> "unable")."""
    scheme = piece_scheme(tokens)
    labels = []
    for group in groups:
        if len(group) == 1 and is_special(tokens[group[0]]):
            labels.append(tokens[group[0]])
            continue
        data = b"".join(piece_bytes(tokens[i], scheme) for i in group)  # decoded as one word
        text = _readable(data.decode("utf-8", errors="replace")).lstrip(" ")
        labels.append(text if text.strip() else "".join(tokens[i] for i in group))
    return labels


def _check_partition(groups: list[list[int]], length: int, axis: str) -> None:
    flat = sorted(i for group in groups for i in group)
    if flat != list(range(length)) or any(len(group) == 0 for group in groups):
        raise ValueError(f"{axis} groups must split the {length} tokens into non-empty words, each token once")


def pool_matrix(matrix: np.ndarray, query_groups: list[list[int]], key_groups: list[list[int]]) -> np.ndarray:
    """Attention over pieces -> attention over words: (..., Tq, Tk) -> (..., Wq, Wk).

    Keys are SUMMED within a word (the attention a word receives is the total its pieces receive,
    so every row still sums to 1); queries are AVERAGED within a word (a word attends the way its
    pieces do on average). This is the usual BertViz / Inseq-style word aggregation.
    """
    tq, tk = matrix.shape[-2:]
    _check_partition(query_groups, tq, "query")
    _check_partition(key_groups, tk, "key")
    dtype = matrix.dtype if np.issubdtype(matrix.dtype, np.floating) else np.float64
    average = np.zeros((len(query_groups), tq), dtype)  # (Wq, Tq) rows of 1/|word|
    for w, group in enumerate(query_groups):
        average[w, group] = 1.0 / len(group)
    total = np.zeros((tk, len(key_groups)), dtype)  # (Tk, Wk) one-hot word membership
    for w, group in enumerate(key_groups):
        total[group, w] = 1.0
    return average @ matrix @ total  # (..., Wq, Wk)
