"""Subword pieces -> words: group tokenizer pieces and pool attention matrices over the groups.

Three marker conventions are recognised from the pieces themselves (no tokenizer needed):
  WordPiece (BERT):          "##ing" continues the previous word, any other piece starts one.
  SentencePiece (T5, Marian): "▁the" starts a word, a piece without "▁" continues one.
  Byte-level BPE (RoBERTa, BART, GPT-2): "Ġthe" (or "Ċ", a newline) starts a word, others continue.
Special tokens ([CLS], </s>, <pad>, ...) are always a word of their own.
"""

from __future__ import annotations

import re

import numpy as np

WORDPIECE, SENTENCEPIECE, BYTE_BPE = "wordpiece", "sentencepiece", "bpe"
SP_MARK, BPE_SPACE, BPE_NEWLINE, WP_CONTINUE = "▁", "Ġ", "Ċ", "##"

SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>"})
_SPECIAL_PATTERN = re.compile(r"^(\[[A-Z_]+\]|<extra_id_\d+>|<\|[a-z_0-9]+\|>)$")  # [CLS], <extra_id_0>, <|endoftext|>


def is_special(token: str) -> bool:
    """True for tokenizer control tokens such as [CLS], [SEP], <s>, </s>, <pad>, <extra_id_0>."""
    return token in SPECIAL_TOKENS or bool(_SPECIAL_PATTERN.match(token))


def piece_scheme(tokens: list[str]) -> str:
    """Which marker convention the pieces use: SENTENCEPIECE if any starts with "▁", BYTE_BPE if any
    starts with "Ġ" or "Ċ", else WORDPIECE (which also covers whole-word vocabularies)."""
    if any(t.startswith(SP_MARK) for t in tokens if not is_special(t)):
        return SENTENCEPIECE
    if any(t.startswith((BPE_SPACE, BPE_NEWLINE)) for t in tokens if not is_special(t)):
        return BYTE_BPE
    return WORDPIECE


def starts_word(tokens: list[str]) -> list[bool]:
    """For each piece: does it begin a new word? The first piece and every piece after a special
    token begin one (RoBERTa's first word has no "Ġ")."""
    scheme = piece_scheme(tokens)
    flags = []
    for i, token in enumerate(tokens):
        if i == 0 or is_special(token) or is_special(tokens[i - 1]):
            flags.append(True)
        elif scheme == WORDPIECE:
            flags.append(not token.startswith(WP_CONTINUE))
        elif scheme == SENTENCEPIECE:
            flags.append(token.startswith(SP_MARK))
        else:
            flags.append(token.startswith((BPE_SPACE, BPE_NEWLINE)))
    return flags


def strip_marker(token: str, scheme: str) -> str:
    """The piece's text without its convention's marker ("##ing" -> "ing", "▁the" -> "the")."""
    if is_special(token):
        return token
    if scheme == WORDPIECE and token.startswith(WP_CONTINUE) and len(token) > len(WP_CONTINUE):
        return token[len(WP_CONTINUE):]
    if scheme == SENTENCEPIECE:
        return token.replace(SP_MARK, " ").lstrip(" ") if token != SP_MARK else ""
    if scheme == BYTE_BPE:
        return token.replace(BPE_SPACE, " ").replace(BPE_NEWLINE, "↵").lstrip(" ")
    return token


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
        text = "".join(strip_marker(tokens[i], scheme) for i in group)
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
