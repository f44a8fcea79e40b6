"""Turning what a person typed into model inputs: cleaning, limits, truncation notices."""

from __future__ import annotations

import math
import threading
import unicodedata

from attn_demos import settings
from attn_demos.adapters.attention_function import AT_FUNCTION
from attn_demos.adapters.extract import Side, model_max_length, takes_position_ids, token_labels
from attn_demos.adapters.families import DECODER, ENCODER, head_count
from attn_demos.adapters.loading import LoadedModel
from attn_demos.core.masks import positions_from_padding
from attn_demos.errors import BadInputError

# The tabs keep every layer's maps of a run (views switch without running the model again), in
# float32, twice under eager (the library's and the core's). One copy must fit this budget, so a
# long-context model typed into a tab cuts the input instead of exhausting the server's memory
# (the settings' maps_budget_mb).
MAPS_BUDGET_ENV = settings.variable("maps_budget_mb")  # named in the notices
MAP_CELL_BYTES = 4  # float32


_tokenizer_locks: dict[int, threading.Lock] = {}


def tokenizer_lock(tokenizer) -> threading.Lock:
    """One lock per tokenizer. A fast tokenizer stores truncation/padding on its shared backend
    between setting it and encoding, so concurrent requests would use each other's settings."""
    return _tokenizer_locks.setdefault(id(tokenizer), threading.Lock())


def clean_text(text: str | None, what: str = "text") -> tuple[str, list[str]]:
    """Cut to the settings' max_characters, strip control characters (keeping newlines and tabs)
    and refuse empty input. The cut comes first, so no per-character work ever reads past it.

    Returns the cleaned text and notices for the person (e.g. that it was cut).
    """
    original = "" if text is None else str(text)
    notices = []
    most = max_characters()
    if len(original) > most:
        notices.append(
            f"The {what} was cut to its first {most:,} characters (it had {len(original):,}; "
            f"the limit is {settings.limit('max_characters')})."
        )
        original = original[:most]
    if not original.strip():
        raise BadInputError(f"The {what} is empty: type something first.")
    # Separators such as \r, \v, \f become spaces (else "one\rtwo" would become "onetwo"); other
    # control, format (zero-width, bidi overrides) and surrogate characters are dropped.
    text = "".join(
        ch if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs") else " " if ch.isspace() else ""
        for ch in original
    )
    removed = len(original) - len(text)
    if removed:
        plural = "s" if removed > 1 else ""
        notices.insert(0, f"Removed {removed} invisible control or formatting character{plural} from the {what}.")
    if not text.strip():
        raise BadInputError(f"The {what} holds only control characters.")
    return text.strip(), notices


def max_characters() -> int:
    """The settings' max_characters: the longest text a request or `view --text-file` reads."""
    return settings.current().max_characters


def read_text_file(path: str) -> tuple[str, list[str]]:
    """The text of a UTF-8 file, read only up to max_characters (clean_text keeps no more), and a
    notice when the file goes on; a file that cannot be read is a one-line BadInputError."""
    most = max_characters()
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(most + 1)  # decoded in blocks of a few kB: what follows is never read
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot read it as UTF-8 text ({type(error).__name__})") from None
    if len(text) <= most:
        return text, []
    return text[:most], [f"The file was read up to its first {most:,} characters; the rest was not read."]


def maps_budget_mb() -> float:
    """The settings' maps budget (--maps-budget-mb, $ATTN_DEMOS_MAPS_BUDGET_MB, else 1024)."""
    return settings.current().maps_budget_mb


def memory_token_limit(loaded: LoadedModel) -> int | None:
    """The longest input whose self-attention maps, every layer and head in float32, fit one copy
    of the maps budget (None for a model without text self-attention)."""
    heads = self_attention_heads(loaded)
    if not heads:
        return None
    return max(1, math.isqrt(int(maps_budget_mb() * 2**20) // (heads * MAP_CELL_BYTES)))  # at least one token


def self_attention_heads(loaded: LoadedModel) -> int:
    """Heads of every layer of the self-attention whose both axes are the input: counted on the
    modules (from weights), or the text config's layers × heads (at the attention function)."""
    if loaded.depth == AT_FUNCTION:
        text = loaded.config.get_text_config()
        return int(getattr(text, "num_attention_heads", 0) or 0) * int(getattr(text, "num_hidden_layers", 0) or 0)
    kind = DECODER if loaded.is_decoder_only else ENCODER
    return sum(head_count(site.module, loaded.config) for site in loaded.family.sites(loaded.model) if site.kind == kind)


def token_limit(loaded: LoadedModel, requested: int | None = None, every_layer: bool = True) -> int:
    """The model's own limit, and where every layer's maps are kept (the tabs) the maps budget's
    and the settings' max_tokens; or a smaller one the caller asks for."""
    budget = memory_token_limit(loaded) if every_layer else None
    most = settings.current().max_tokens if every_layer else None
    limits = [model_max_length(loaded), budget, most, requested or None]  # 0 or None: no request
    return min(limit for limit in limits if limit is not None)


def truncation_notice(
    loaded: LoadedModel, kept: int, full_length: int, what: str = "Input", every_layer: bool = True
) -> str:
    """Why `kept` of `full_length` tokens were read: the model's limit, or the settings' max_tokens
    or the maps budget (which apply only where every layer's maps are kept)."""
    if every_layer and kept == settings.current().max_tokens and kept < model_max_length(loaded):
        return f"{what} truncated to {kept:,} of {full_length:,} tokens: this app reads at most {settings.limit('max_tokens')}."
    if every_layer and kept == memory_token_limit(loaded) and kept < model_max_length(loaded):
        return (
            f"{what} truncated to {kept:,} of {full_length:,} tokens: every layer's attention maps of a longer "
            f"input would exceed this app's {maps_budget_mb():g} MB for one input's maps ({MAPS_BUDGET_ENV}); "
            f"the model itself reads up to {model_max_length(loaded):,}."
        )
    return f"{what} truncated to the model's limit: kept {kept} of {full_length:,} tokens."


def tokenize_text(
    loaded: LoadedModel,
    text: str,
    max_tokens: int | None = None,
    what: str = "text",
    special_tokens: bool = True,
    every_layer: bool = True,
):
    """One text -> (model inputs (1, T), Side, notices); says how much truncation cut.

    special_tokens=False when the text already holds them (a chat template applied).
    every_layer=False for a caller that keeps a few layers' maps (and bounds them itself): the
    maps budget for every layer does not cut the text then."""
    text, notices = clean_text(text, what)
    tokenizer = loaded.preprocessor
    limit = token_limit(loaded, max_tokens, every_layer)
    with tokenizer_lock(tokenizer):
        counted = tokenizer(text, truncation=False, add_special_tokens=special_tokens, verbose=False)  # no "longer than" warning
        full_length = len(counted["input_ids"])
        batch = tokenizer(
            [text], return_tensors="pt", truncation=True, max_length=limit, add_special_tokens=special_tokens
        )
    if loaded.is_encoder_decoder or loaded.is_decoder_only:
        batch.pop("token_type_ids", None)
    if loaded.is_decoder_only and takes_position_ids(loaded.model):  # BartForCausalLM and the like take none
        batch["position_ids"] = positions_from_padding(batch["attention_mask"])  # (1, T): 0..T-1, no padding
    kept = batch["input_ids"].shape[1]
    if kept > limit:  # a tokenizer does not cut below its special tokens: only a tiny maps budget gets here
        raise BadInputError(
            f"This app's maps budget ({MAPS_BUDGET_ENV}) holds {limit} token(s) of this model, and the {what} needs "
            f"at least {kept}; the operator can raise it."
        )
    if full_length > kept:
        notices.append(truncation_notice(loaded, kept, full_length, every_layer=every_layer))
    tokens = token_labels(tokenizer, batch["input_ids"][0].tolist())
    return batch, Side([tokens], batch["attention_mask"].bool()), notices
