"""Model families: where each architecture keeps its attention projections, and how it scales.

A family is a few facts, not code: the names of the query/key/value projections, the scale of
q·kᵀ, and an optional position bias. Architectures that share a layout share a family, so adding
one (say RoBERTa) is a line in FAMILY_OF_MODEL_TYPE.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from attn_demos.core.position_bias import relative_position_bias, relative_position_buckets
from attn_demos.errors import UnsupportedModelError

ENCODER, DECODER, CROSS, VISION = "encoder", "decoder", "cross", "vision"
KINDS = (ENCODER, DECODER, CROSS, VISION)


@dataclass(frozen=True)
class AttentionSite:
    """One attention module of a model: which kind, which layer, and the module itself."""

    kind: str
    layer: int
    name: str  # unique per site: the module's path, plus "@depth" for a module shared by depths
    module: torch.nn.Module
    module_path: str = ""  # the module's path in the model; "" means `name`
    call: int = 0  # which call of the module in one forward pass (ALBERT calls one module per depth)

    def __post_init__(self):
        if not self.module_path:
            object.__setattr__(self, "module_path", self.name)


@dataclass(frozen=True)
class Family:
    """How to recompute one architecture's attention from its own weights."""

    name: str
    projections: tuple[str, str, str]  # attribute names of the query, key, value nn.Linear
    scale: float | None = None  # None: 1/√d_head, the tutorial's scaling; T5 uses 1.0
    vision: bool = False
    # (model, sites, kind, Tq, Tk) -> additive bias (1, H, Tq, Tk) or None
    position_bias: Callable | None = field(default=None, compare=False)

    def sites(self, model: torch.nn.Module) -> list[AttentionSite]:
        """Every attention module, found by its projections, with kind and layer from its path."""
        found = []
        for name, module in model.named_modules():
            if not all(isinstance(getattr(module, p, None), torch.nn.Linear) for p in self.projections):
                continue
            found.append(AttentionSite(_kind_of(name, self.vision), _layer_of(name), name, module))
        return sorted(found, key=lambda s: (KINDS.index(s.kind), s.layer))


def _kind_of(path: str, vision: bool) -> str:
    lowered = path.lower()
    if any(tag in lowered for tag in ("encoder_attn", "encdecattention", "crossattention")):
        return CROSS
    if "decoder" in lowered:
        return DECODER
    return VISION if vision else ENCODER


def _layer_of(path: str) -> int:
    """The first number in the module path is its layer (e.g. encoder.block.3.layer.0.SelfAttention)."""
    match = re.search(r"\.(\d+)(\.|$)", path)
    if match is None:
        raise UnsupportedModelError(f"cannot tell the layer of attention module {path!r}")
    return int(match.group(1))


def head_count(module: torch.nn.Module, config) -> int:
    """Number of heads of one attention module (the attribute name differs by family)."""
    for attr in ("num_attention_heads", "num_heads", "n_heads"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return int(config.num_attention_heads)


def t5_position_bias(model, sites: list[AttentionSite], kind: str, q_len: int, k_len: int):
    """T5: one learned bias table in the first block of each stack, shared by all its layers.

    Encoder buckets are bidirectional, decoder buckets unidirectional; cross-attention has none.
    """
    if kind == CROSS:
        return None
    (first,) = [s.module for s in sites if s.kind == kind and getattr(s.module, "has_relative_attention_bias", False)]
    config = model.config
    buckets = relative_position_buckets(
        q_len,
        k_len,
        bidirectional=kind == ENCODER,
        num_buckets=config.relative_attention_num_buckets,
        max_distance=config.relative_attention_max_distance,
    )  # (Tq, Tk)
    table = first.relative_attention_bias.weight  # (num_buckets, H)
    return relative_position_bias(table, buckets.to(table.device))  # (1, H, Tq, Tk)


BERT = Family("bert", ("query", "key", "value"))
DISTILBERT = Family("distilbert", ("q_lin", "k_lin", "v_lin"))
BART = Family("bart", ("q_proj", "k_proj", "v_proj"))
T5 = Family("t5", ("q", "k", "v"), scale=1.0, position_bias=t5_position_bias)
VIT = Family("vit", ("q_proj", "k_proj", "v_proj"), vision=True)

FAMILY_OF_MODEL_TYPE = {
    "bert": BERT,
    "roberta": BERT,
    "xlm-roberta": BERT,
    "electra": BERT,
    "distilbert": DISTILBERT,
    "bart": BART,
    "marian": BART,
    "mbart": BART,
    "pegasus": BART,
    "t5": T5,
    "mt5": T5,
    "vit": VIT,
}


def family_for(model_type: str) -> Family:
    """The family of a config's model_type, or a one-line UnsupportedModelError."""
    try:
        return FAMILY_OF_MODEL_TYPE[model_type]
    except KeyError:
        supported = ", ".join(sorted(FAMILY_OF_MODEL_TYPE))
        raise UnsupportedModelError(
            f"architecture {model_type!r} is not supported (supported: {supported}); "
            "its attention cannot be recomputed, so no numbers are shown"
        ) from None
