"""Turning what a person typed into model inputs: cleaning, limits, truncation notices."""

from __future__ import annotations

import threading
import unicodedata

from attn_demos.adapters.extract import Side, model_max_length, token_labels
from attn_demos.adapters.loading import LoadedModel
from attn_demos.core.masks import positions_from_padding
from attn_demos.errors import BadInputError

MAX_CHARACTERS = 100_000  # longer input is cut before tokenization, with a notice

_tokenizer_locks: dict[int, threading.Lock] = {}


def tokenizer_lock(tokenizer) -> threading.Lock:
    """One lock per tokenizer. A fast tokenizer stores truncation/padding on its shared backend
    between setting it and encoding, so concurrent requests would use each other's settings."""
    return _tokenizer_locks.setdefault(id(tokenizer), threading.Lock())


def clean_text(text: str | None, what: str = "text") -> tuple[str, list[str]]:
    """Strip control characters (keeping newlines and tabs) and refuse empty input.

    Returns the cleaned text and notices for the person (e.g. that it was cut).
    """
    if text is None or not str(text).strip():
        raise BadInputError(f"The {what} is empty: type something first.")
    notices = []
    original = str(text)
    # Separators such as \r, \v, \f become spaces (else "one\rtwo" would become "onetwo"); other
    # control, format (zero-width, bidi overrides) and surrogate characters are dropped.
    text = "".join(
        ch if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs") else " " if ch.isspace() else ""
        for ch in original
    )
    removed = len(original) - len(text)
    if removed:
        plural = "s" if removed > 1 else ""
        notices.append(f"Removed {removed} invisible control or formatting character{plural} from the {what}.")
    if not text.strip():
        raise BadInputError(f"The {what} holds only control characters.")
    if len(text) > MAX_CHARACTERS:
        notices.append(f"The {what} was cut to its first {MAX_CHARACTERS:,} characters (it had {len(text):,}).")
        text = text[:MAX_CHARACTERS]
    return text.strip(), notices


def token_limit(loaded: LoadedModel, requested: int | None = None) -> int:
    """The model's own limit, or a smaller one the caller asks for."""
    limit = model_max_length(loaded)
    return min(limit, requested) if requested else limit


def tokenize_text(
    loaded: LoadedModel, text: str, max_tokens: int | None = None, what: str = "text", special_tokens: bool = True
):
    """One text -> (model inputs (1, T), Side, notices); says how much truncation cut.

    special_tokens=False when the text already holds them (a chat template applied)."""
    text, notices = clean_text(text, what)
    tokenizer = loaded.preprocessor
    limit = token_limit(loaded, max_tokens)
    with tokenizer_lock(tokenizer):
        full_length = len(tokenizer(text, truncation=False, add_special_tokens=special_tokens)["input_ids"])
        batch = tokenizer(
            [text], return_tensors="pt", truncation=True, max_length=limit, add_special_tokens=special_tokens
        )
    if loaded.is_encoder_decoder or loaded.is_decoder_only:
        batch.pop("token_type_ids", None)
    if loaded.is_decoder_only:
        batch["position_ids"] = positions_from_padding(batch["attention_mask"])  # (1, T): 0..T-1, no padding
    if full_length > limit:
        notices.append(f"Input truncated to the model's limit: kept {limit} of {full_length:,} tokens.")
    tokens = token_labels(tokenizer, batch["input_ids"][0].tolist())
    return batch, Side([tokens], batch["attention_mask"].bool()), notices
