"""What a model's config says about its size, read before any weight is: sizes that cannot be (a
negative number of heads), and about how much memory its weights would take.

The memory budget is this machine's physical memory: from_pretrained builds the whole model in
memory (on the CPU, before it moves to a GPU), so a model whose weights exceed it cannot load here,
and trying would only push the machine into swap or the kernel's out-of-memory killer.
"""

from __future__ import annotations

import os

from attn_demos.errors import ModelLoadError

# The config's sizes that shape the model's tensors, read through the config (whose attribute_map
# gives GPT-2's n_head as num_attention_heads, T5's d_model as hidden_size, …). Each, where the
# config has it, must be a whole number ≥ 1.
SIZES = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "max_position_embeddings", "embedding_size",
    "encoder_layers", "decoder_layers", "num_decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
    "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "n_inner", "hidden_dim",
    "image_size", "patch_size", "num_channels",
)
FEED_FORWARD = ("intermediate_size", "encoder_ffn_dim", "d_ff", "n_inner", "hidden_dim")  # the first one set
GB = 1e9


def refuse_impossible_sizes(source: str, config) -> None:
    """A size in `config` that no model can have (0, negative, not a whole number) is a one-line
    ModelLoadError, before any model is built from it."""
    for name in SIZES:
        value = getattr(config, name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelLoadError(f"{source}: its config's {name} is {value!r}; a size must be a whole number ≥ 1")


def parameter_estimate(config) -> int:
    """About how many parameters a model of `config` has (from its sizes alone): embeddings, and
    per layer four h × h attention projections and a gated h × f feed-forward (three matrices; an
    ungated one has two, so this errs high), plus cross-attention in an encoder-decoder's decoder."""
    hidden = _size(config, "hidden_size")
    feed_forward = next((_size(config, name) for name in FEED_FORWARD if _size(config, name)), 4 * hidden)
    layer = 4 * hidden * hidden + 3 * hidden * feed_forward
    if getattr(config, "is_encoder_decoder", False):
        encoder = _size(config, "encoder_layers") or _size(config, "num_hidden_layers")
        decoder = _size(config, "decoder_layers") or _size(config, "num_decoder_layers") or encoder
        layers = encoder * layer + decoder * (layer + 4 * hidden * hidden)
    else:
        layers = _size(config, "num_hidden_layers") * layer
    embeddings = _size(config, "vocab_size") * hidden * (1 if getattr(config, "tie_word_embeddings", True) else 2)
    return layers + embeddings


def refuse_beyond_memory(source: str, config, dtype_name: str, bytes_per_parameter: int) -> None:
    """A model whose weights (parameter_estimate × bytes per parameter) exceed this machine's
    memory is a one-line ModelLoadError, before anything is allocated."""
    budget = memory_budget_bytes()
    parameters = parameter_estimate(config)
    needed = parameters * bytes_per_parameter
    if budget is not None and needed > budget:
        raise ModelLoadError(
            f"{source}: its config describes about {parameters / 1e9:,.1f} billion parameters, "
            f"{needed / GB:,.1f} GB in {dtype_name}: more than this machine's {budget / GB:,.1f} GB of memory"
        )


def memory_budget_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or the name is unknown
        return None


def _size(config, name: str) -> int:
    value = getattr(config, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
