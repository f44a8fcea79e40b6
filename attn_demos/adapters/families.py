"""Model families: where each architecture keeps its attention projections, and how it scales.

A family is a few facts, not code: the names of the query/key/value projections, the scale of
q·kᵀ, and an optional position bias. Architectures that share a layout share a family, so adding
one (say RoBERTa) is a line in FAMILY_OF_MODEL_TYPE.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from attn_demos.core.position_bias import relative_position_bias, relative_position_buckets
from attn_demos.core.rotary import ROTARY_SCALINGS, rotary_dimension
from attn_demos.errors import UnsupportedModelError

ENCODER, DECODER, CROSS, VISION = "encoder", "decoder", "cross", "vision"
KINDS = (ENCODER, DECODER, CROSS, VISION)
PER_HEAD, WHOLE = "head", "projection"  # q/k norms: over each head's d channels (Qwen3), or the whole H·d projection (OLMo 2)
QK_NORMS = (PER_HEAD, WHOLE)


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
    """How to recompute one architecture's attention from its own weights: a few facts and, where
    an architecture needs them, small functions (see `attention_terms` in recompute.py for the order
    they are applied in)."""

    name: str
    projections: tuple[str, ...]  # attribute names of the projection modules that mark an attention module
    # (config, the one fused projection's output (B, T, ·)) -> q (B, H, T, d), k and v (B, H_kv, T, d)
    split: Callable | None = field(default=None, compare=False)  # None: separate q, k, v nn.Linear
    scale: float | Callable | None = field(default=None, compare=False)  # None: 1/√d; or (config, layer, d) -> float
    vision: bool = False
    prefix_tokens: tuple[str, ...] = ("[CLS]",)  # vision: the tokens before the patches
    decoder_only: bool = False  # causal self-attention only (kind "decoder")
    # (model, sites, kind, Tq, Tk) -> additive bias (1, H, Tq, Tk) or None
    position_bias: Callable | None = field(default=None, compare=False)
    rotary: str | None = None  # None, "full" (every channel of a head) or "partial" (the config's fraction)
    rotary_on: Callable | None = field(default=None, compare=False)  # (config, layer) -> False: no rotary there
    qk_norm: str | None = None  # RMSNorm of q and k (modules q_norm, k_norm) before rotary: QK_NORMS
    qk_norm_offset: float = 0.0  # the norms scale by offset + weight (Gemma 3: 1 + weight)
    clip: Callable | None = field(default=None, compare=False)  # config -> bound of q, k, v (OLMo's clip_qkv) or None
    window: Callable | None = field(default=None, compare=False)  # (config, layer) -> sliding window or None
    softcap: Callable | None = field(default=None, compare=False)  # config -> logit soft-cap or None
    softmax_dtype: torch.dtype | None = None  # the dtype the library runs softmax in, whatever the model's
    upcast: Callable | None = field(default=None, compare=False)  # config -> True: q·kᵀ and softmax in float32
    shared_layers: bool = False  # one module serves every depth (ALBERT): one site per call
    check: Callable | None = field(default=None, compare=False)  # config -> None, or UnsupportedModelError

    def sites(self, model: torch.nn.Module) -> list[AttentionSite]:
        """Every attention module, found by its projections, with kind and layer from its path;
        searched once per model (its modules do not change), as every verified pass asks."""
        per_family = _sites_of.setdefault(model, {})
        key = (self.name, self.decoder_only)
        if key not in per_family:
            per_family[key] = self._find_sites(model)
        return list(per_family[key])

    def _find_sites(self, model: torch.nn.Module) -> list[AttentionSite]:
        if not self.projections:
            raise UnsupportedModelError(
                f"{self.name} is checked at the attention function only (its attention cannot be recomputed from "
                "its weights), so this view, which needs the from-weights depth, is not available for it"
            )
        found = []
        for name, module in model.named_modules():
            if not all(isinstance(getattr(module, p, None), torch.nn.Module) for p in self.projections):
                continue
            if self.shared_layers:
                found += _shared_sites(name, module, model.config)
                continue
            kind = _kind_of(name, self.vision)
            if self.decoder_only and kind == CROSS:
                continue  # a decoder alone (BartForCausalLM) is given no encoder states: its cross-attention never runs
            kind = DECODER if self.decoder_only else kind
            found.append(AttentionSite(kind, _layer_of(name), name, module))
        return sorted(found, key=lambda s: (KINDS.index(s.kind), s.layer))


_sites_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(family name, decoder_only): its sites}


def _shared_sites(name: str, module: torch.nn.Module, config) -> list[AttentionSite]:
    """ALBERT: layer group g serves depths g·L/G … (g+1)·L/G − 1, one call each (one inner layer per group)."""
    if getattr(config, "inner_group_num", 1) != 1:
        raise UnsupportedModelError(f"ALBERT with inner_group_num={config.inner_group_num} is not supported (only 1)")
    group = _layer_of(name)
    depths = [i for i in range(config.num_hidden_layers) if int(i / (config.num_hidden_layers / config.num_hidden_groups)) == group]
    return [AttentionSite(ENCODER, depth, f"{name}@{depth}", module, name, call) for call, depth in enumerate(depths)]


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


# --- decoder-only language models -------------------------------------------------------------


def head_dim_of(config) -> int:
    """The size of one head: the config's head_dim when it names one, else hidden_size / heads."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def key_value_heads(config) -> int:
    """Key/value heads (fewer than query heads under grouped-query attention)."""
    return getattr(config, "num_key_value_heads", None) or config.num_attention_heads


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, heads·d) -> (B, heads, T, d)."""
    batch, length, width = x.shape
    if width % heads:
        raise UnsupportedModelError(f"projection width {width} does not split into {heads} heads")
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def gpt2_split(config, fused: torch.Tensor):
    """GPT-2: its one Conv1D c_attn (x·W + b, W (D, 3D)) gives [q | k | v] side by side."""
    q, k, v = fused.split(config.hidden_size, dim=-1)  # (B, T, D) each
    heads = config.num_attention_heads
    return _heads(q, heads), _heads(k, heads), _heads(v, heads)


def phi3_split(config, fused: torch.Tensor):
    """Phi-3: its one Linear qkv_proj gives [q (H·d) | k (H_kv·d) | v (H_kv·d)]."""
    d = head_dim_of(config)
    heads, kv_heads = config.num_attention_heads, key_value_heads(config)
    q, k, v = fused.split([heads * d, kv_heads * d, kv_heads * d], dim=-1)
    return _heads(q, heads), _heads(k, kv_heads), _heads(v, kv_heads)


def neox_split(config, fused: torch.Tensor):
    """GPT-NeoX: its one Linear query_key_value gives, per head, [q_h | k_h | v_h] (3·d channels)."""
    per_head = _heads(fused, config.num_attention_heads)  # (B, H, T, 3d)
    q, k, v = per_head.chunk(3, dim=-1)  # (B, H, T, d) each
    return q, k, v


def gpt2_scale(config, layer: int, head_dim: int) -> float:
    """1/√d when scale_attn_weights, divided by (layer + 1) when scale_attn_by_inverse_layer_idx."""
    scale = head_dim**-0.5 if config.scale_attn_weights else 1.0
    if config.scale_attn_by_inverse_layer_idx:
        scale /= float(layer + 1)
    return scale


def attention_multiplier(config, layer: int, head_dim: int) -> float:
    """Granite: config.attention_multiplier instead of 1/√d."""
    return float(config.attention_multiplier)


def clip_qkv(config) -> float | None:
    """OLMo: q, k and v clamped to ±clip_qkv after their projections (None: not clamped)."""
    return getattr(config, "clip_qkv", None)


def query_pre_attn_scale(config, layer: int, head_dim: int) -> float:
    """Gemma 2: 1/√query_pre_attn_scalar instead of 1/√d."""
    return config.query_pre_attn_scalar**-0.5


def window_on_every_layer(config, layer: int) -> int | None:
    """Mistral, Phi-3: config.sliding_window (None: no window) on every layer."""
    return getattr(config, "sliding_window", None)


def window_by_layer_type(config, layer: int) -> int | None:
    """Qwen2/3, Gemma 2: config.sliding_window on layers whose layer_types entry is "sliding_attention"."""
    layer_type = config.layer_types[layer]
    if layer_type == "full_attention":
        return None
    if layer_type == "sliding_attention":
        return config.sliding_window
    raise UnsupportedModelError(f"layer type {layer_type!r} is not supported (only full_attention, sliding_attention)")


def logit_softcap(config) -> float | None:
    """Gemma 2: attn_logit_softcapping (None: no cap)."""
    return getattr(config, "attn_logit_softcapping", None)


def check_rotary(config) -> None:
    """Refuse rotary variants the core does not implement (proportional, axial …), for the whole
    model or, where the config names parameters per layer type (OLMo 3, Gemma 3), for each type."""
    for parameters in _rope_parameter_sets(config):
        rope_type = parameters.get("rope_type", "default")
        if rope_type not in ROTARY_SCALINGS:
            raise UnsupportedModelError(
                f"rotary embedding type {rope_type!r} is not supported (only {', '.join(ROTARY_SCALINGS)}); "
                "its attention cannot be recomputed, so no numbers are shown"
            )
        if "rope_theta" not in parameters:
            raise UnsupportedModelError("the config names no rope_theta, so its rotary embedding cannot be recomputed")


def _rope_parameter_sets(config) -> list[dict]:
    """The config's rotary parameters: one dict, or one per layer type when they are nested by type."""
    parameters = getattr(config, "rope_parameters", None) or {}
    nested = [parameters[kind] for kind in set(getattr(config, "layer_types", None) or ()) if isinstance(parameters.get(kind), dict)]
    return nested or [parameters]


def check_gpt2(config) -> None:
    if getattr(config, "add_cross_attention", False):
        raise UnsupportedModelError("GPT-2 with cross-attention (add_cross_attention) is not supported")


def gpt2_upcast(config) -> bool:
    """GPT-2's reorder_and_upcast_attn: q and k upcast to float32, scaled in the product, softmax in
    float32 (the weights then return in the model's dtype). In a float32 model this is plain GPT-2."""
    return bool(getattr(config, "reorder_and_upcast_attn", False))


def check_dtype(family: Family, config, dtype: torch.dtype) -> None:
    """Refuse, in one line, a dtype the library itself cannot run this family's attention in."""
    if dtype == torch.float64 and family.upcast is not None and family.upcast(config):
        raise UnsupportedModelError(
            "GPT-2 with reorder_and_upcast_attn does not run in float64: transformers' upcast path insists on "
            "float32 weights and raises (use float32, bfloat16 or float16)"
        )


@dataclass(frozen=True)
class RotarySettings:
    """What the core needs of a config's rotary embedding: channels per head, the scaling's
    parameters (transformers' rope_parameters: rope_type, rope_theta, factor …) and the model's length."""

    rotary_dim: int
    parameters: dict
    max_positions: int


def rotary_settings(config, family: Family, layer: int) -> RotarySettings:
    """The rotary embedding of `layer` as the config describes it: every channel, or
    partial_rotary_factor of them; the parameters of the layer's type where they are nested by type."""
    parameters = config.rope_parameters
    layer_types = getattr(config, "layer_types", None)
    if layer_types and isinstance(parameters.get(layer_types[layer]), dict):
        parameters = parameters[layer_types[layer]]
    parameters = dict(parameters)
    fraction = parameters.get("partial_rotary_factor", 1.0) if family.rotary == "partial" else 1.0
    return RotarySettings(rotary_dimension(head_dim_of(config), fraction), parameters, int(config.max_position_embeddings))


def always(config) -> bool:
    """For a family that always upcasts (GPT-Neo)."""
    return True


def window_by_attention_layer(config, layer: int) -> int | None:
    """GPT-Neo: config.window_size on layers whose attention_layers entry is "local"."""
    kind = config.attention_layers[layer]
    if kind not in ("global", "local"):
        raise UnsupportedModelError(f"GPT-Neo attention type {kind!r} is not supported (only global, local)")
    return config.window_size if kind == "local" else None


def rotary_unless_no_rope(config, layer: int) -> bool:
    """SmolLM3: rotary on the layers whose no_rope_layers entry is 1 (NoPE on the others)."""
    return bool(config.no_rope_layers[layer])


def check_partial_rotary(config) -> None:
    """Phi, StableLM, GLM-4-MoE: plain partial rotary; their optional q/k norms are not recomputed."""
    check_rotary(config)
    for knob in ("qk_layernorm", "use_qk_norm"):
        if getattr(config, knob, False):
            raise UnsupportedModelError(f"{knob}=True is not supported (q/k norms of this layout are not recomputed)")


def check_mvp(config) -> None:
    if getattr(config, "use_prompt", False):
        raise UnsupportedModelError("MVP with use_prompt=True is not supported (its prompt keys and values are not recomputed)")


def check_xlm(config) -> None:
    if getattr(config, "causal", False):
        raise UnsupportedModelError("XLM with causal=True is not supported (its causal mask ignores padding)")
    if not getattr(config, "is_encoder", True):
        raise UnsupportedModelError("XLM as a decoder (is_encoder=False, with cross-attention) is not supported")


def check_no_cross_attention(config) -> None:
    if getattr(config, "add_cross_attention", False):
        raise UnsupportedModelError("a decoder-only model with cross-attention (add_cross_attention) is not supported")


def check_causal_rotary(config) -> None:
    """Rotary decoders whose config can turn their causal mask off (Gemma's use_bidirectional_attention)."""
    check_rotary(config)
    if getattr(config, "use_bidirectional_attention", False):
        raise UnsupportedModelError("use_bidirectional_attention is not supported (a causal decoder is recomputed)")


BERT = Family("bert", ("query", "key", "value"))
DISTILBERT = Family("distilbert", ("q_lin", "k_lin", "v_lin"))
BART = Family("bart", ("q_proj", "k_proj", "v_proj"))
T5 = Family("t5", ("q", "k", "v"), scale=1.0, position_bias=t5_position_bias)
VIT = Family("vit", ("q_proj", "k_proj", "v_proj"), vision=True, softmax_dtype=torch.float32)
DEIT = Family(
    "deit", ("q_proj", "k_proj", "v_proj"), vision=True, prefix_tokens=("[CLS]", "[DIST]"), softmax_dtype=torch.float32
)
ALBERT = Family("albert", ("query", "key", "value"), shared_layers=True)

GPT2 = Family(
    "gpt2", ("c_attn",), split=gpt2_split, scale=gpt2_scale, decoder_only=True, upcast=gpt2_upcast, check=check_gpt2
)
_ROPE = dict(decoder_only=True, softmax_dtype=torch.float32, check=check_rotary)
LLAMA = Family("llama", ("q_proj", "k_proj", "v_proj"), rotary="full", **_ROPE)
QWEN2 = Family("qwen2", ("q_proj", "k_proj", "v_proj"), rotary="full", window=window_by_layer_type, **_ROPE)
QWEN3 = Family("qwen3", ("q_proj", "k_proj", "v_proj"), rotary="full", qk_norm=PER_HEAD, window=window_by_layer_type, **_ROPE)
MISTRAL = Family("mistral", ("q_proj", "k_proj", "v_proj"), rotary="full", window=window_on_every_layer, **_ROPE)
GEMMA2 = Family(
    "gemma2", ("q_proj", "k_proj", "v_proj"), rotary="full", scale=query_pre_attn_scale,
    window=window_by_layer_type, softcap=logit_softcap, **_ROPE,
)
PHI3 = Family("phi3", ("qkv_proj",), split=phi3_split, rotary="partial", window=window_on_every_layer, **_ROPE)
GPT_NEOX = Family("gpt_neox", ("query_key_value",), split=neox_split, rotary="partial", **_ROPE)
# multipliers instead of 1/√d, q/k norms over the whole projection, clamped projections, windows by layer type
_QKV = ("q_proj", "k_proj", "v_proj")
GEMMA = Family("gemma", _QKV, rotary="full", **{**_ROPE, "check": check_causal_rotary})
GRANITE = Family("granite", _QKV, rotary="full", scale=attention_multiplier, **_ROPE)
OLMO = Family("olmo", _QKV, rotary="full", clip=clip_qkv, **_ROPE)
OLMO2 = Family("olmo2", _QKV, rotary="full", qk_norm=WHOLE, clip=clip_qkv, **_ROPE)
OLMO3 = Family("olmo3", _QKV, rotary="full", qk_norm=WHOLE, window=window_by_layer_type, **_ROPE)
GEMMA3 = Family(  # per-head q/k norms scaled by 1 + weight; its eager function is given no soft-cap
    "gemma3", _QKV, rotary="full", qk_norm=PER_HEAD, qk_norm_offset=1.0, scale=query_pre_attn_scale,
    window=window_by_layer_type, **{**_ROPE, "check": check_causal_rotary},
)
PARTIAL = Family("partial", _QKV, rotary="partial", **{**_ROPE, "check": check_partial_rotary})  # StableLM, GLM-4-MoE
PHI = replace(PARTIAL, name="phi")  # the same, its output projection named `dense`
SMOLLM3 = Family("smollm3", _QKV, rotary="full", rotary_on=rotary_unless_no_rope, window=window_by_layer_type, **_ROPE)
MVP = replace(BART, check=check_mvp)
QWEN3_MOE = Family("qwen3_moe", _QKV, rotary="full", qk_norm=PER_HEAD, window=window_on_every_layer, **_ROPE)
GPT_NEO = Family(  # no 1/√d; q·kᵀ and softmax in float32; local layers slide
    "gpt_neo", _QKV, scale=1.0, decoder_only=True, upcast=always, window=window_by_attention_layer,
)
OPENAI_GPT = Family("openai-gpt", ("c_attn",), split=gpt2_split, decoder_only=True)  # GPT-2's fused c_attn, 1/√d
XGLM = Family("xglm", _QKV, decoder_only=True, check=check_no_cross_attention)  # BART's attention, decoder alone
XLM = Family("xlm", ("q_lin", "k_lin", "v_lin"), softmax_dtype=torch.float32, check=check_xlm)  # DistilBERT's layout

FAMILY_OF_MODEL_TYPE = {
    "bert": BERT,
    "roberta": BERT,
    "xlm-roberta": BERT,
    "electra": BERT,
    "albert": ALBERT,
    "distilbert": DISTILBERT,
    "bart": BART,
    "marian": BART,
    "mbart": BART,
    "pegasus": BART,
    "t5": T5,
    "mt5": T5,
    "vit": VIT,
    "deit": DEIT,
    "gpt2": GPT2,
    "llama": LLAMA,
    "qwen2": QWEN2,
    "qwen3": QWEN3,
    "mistral": MISTRAL,
    "gemma2": GEMMA2,
    "phi3": PHI3,
    "gpt_neox": GPT_NEOX,
    # BERT's attention, other embeddings or norms around it
    "camembert": BERT,
    "data2vec-text": BERT,
    "layoutlm": replace(BERT, softmax_dtype=torch.float32),  # BERT's layout, its softmax in float32
    "megatron-bert": BERT,
    "roc_bert": BERT,
    "xmod": BERT,
    "rembert": BERT,
    "tapas": BERT,
    "ernie": BERT,
    "roberta-prelayernorm": BERT,
    "xlm-roberta-xl": BERT,
    # BART's attention
    "blenderbot": BART,
    "blenderbot-small": BART,
    "xglm": XGLM,
    "mvp": MVP,
    "plbart": BART,
    "trocr": BART,
    # Llama's attention (and Mistral's, Qwen's) in other models
    "arcee": LLAMA,
    "jais2": LLAMA,
    "seed_oss": LLAMA,
    "solar_open": LLAMA,
    "hyperclovax": GRANITE,
    "phimoe": MISTRAL,
    "phi": PHI,
    "stablelm": PARTIAL,
    "glm4_moe": PARTIAL,
    "smollm3": SMOLLM3,
    "gemma": GEMMA,
    "gemma3_text": GEMMA3,
    "mixtral": MISTRAL,
    "starcoder2": MISTRAL,
    "qwen2_moe": QWEN2,
    "qwen3_moe": QWEN3_MOE,
    "granite": GRANITE,
    "granitemoe": GRANITE,
    "granitemoeshared": GRANITE,
    "olmo": OLMO,
    "olmo2": OLMO2,
    "olmo3": OLMO3,
    "flex_olmo": OLMO2,
    "gpt_neo": GPT_NEO,
    "openai-gpt": OPENAI_GPT,
    "xlm": XLM,
    "flaubert": XLM,
}


def family_of_model(family: Family, config) -> Family:
    """The family as the loaded model runs it: an encoder family's causal-LM head (BertLMHeadModel
    and the like, is_decoder=True) and an encoder-decoder family's decoder alone (BartForCausalLM
    and the like) run one causal self-attention stack, kind "decoder", like a decoder-only model."""
    alone = getattr(config, "is_decoder", False) and not getattr(config, "is_encoder_decoder", False)
    if alone and not family.decoder_only and not family.vision:
        return replace(family, decoder_only=True)
    return family


def family_for(model_type: str, config=None) -> Family:
    """The family of a config's model_type, or a one-line UnsupportedModelError (also for a config
    holding a setting the family's recomputation does not apply, when `config` is given)."""
    family = FAMILY_OF_MODEL_TYPE.get(model_type)
    if family is None:
        supported = ", ".join(sorted(FAMILY_OF_MODEL_TYPE))
        raise UnsupportedModelError(
            f"architecture {model_type!r} is not supported (supported: {supported}); "
            "its attention cannot be recomputed, so no numbers are shown"
        )
    if config is not None and family.check is not None:
        family.check(config)
    if config is not None and family.shared_layers and getattr(config, "inner_group_num", 1) != 1:
        raise UnsupportedModelError(f"ALBERT with inner_group_num={config.inner_group_num} is not supported (only 1)")
    return family
