"""Architectures the family table expresses as data (multipliers instead of 1/√d, q/k norms over the
whole projection or per head with an offset, clamped projections, rotary per layer type or off on
some layers, windows, float32 upcasts): each verifies from weights against the library in float32
and float64, and a control that drops its factor must fail."""

from __future__ import annotations

import dataclasses

import coverage_sweep  # scripts/coverage_sweep.py (pytest's pythonpath has scripts/)
import pytest
import torch

from attn_demos.adapters import recompute
from attn_demos.adapters.attention_function import FROM_WEIGHTS
from attn_demos.adapters.compare import compare_text_model

SAMPLE = {  # model type -> (class, auto class): one per new kind of fact
    "granite": ("GraniteForCausalLM", "AutoModelForCausalLM"),  # attention_multiplier
    "olmo2": ("Olmo2ForCausalLM", "AutoModelForCausalLM"),  # q/k RMSNorm over the whole projection
    "olmo3": ("Olmo3ForCausalLM", "AutoModelForCausalLM"),  # … with windows and rotary per layer type
    "gemma3_text": ("Gemma3ForCausalLM", "AutoModelForCausalLM"),  # per-head norms × (1 + weight), scalar, windows
    "qwen3_moe": ("Qwen3MoeForCausalLM", "AutoModelForCausalLM"),  # per-head norms, window on every layer
    "phi": ("PhiForCausalLM", "AutoModelForCausalLM"),  # partial rotary, q_proj/k_proj/v_proj/dense
    "gpt_neo": ("GPTNeoForCausalLM", "AutoModelForCausalLM"),  # no 1/√d, float32 logits, local windows
    "xglm": ("XGLMForCausalLM", "AutoModelForCausalLM"),  # BART's attention in a decoder alone
    "mvp": ("MvpForConditionalGeneration", "AutoModelForSeq2SeqLM"),
    "megatron-bert": ("MegatronBertForMaskedLM", "AutoModelForMaskedLM"),
    "openai-gpt": ("OpenAIGPTLMHeadModel", "AutoModelForCausalLM"),  # GPT-2's fused c_attn
    "xlm": ("XLMWithLMHeadModel", "AutoModelForCausalLM"),  # DistilBERT's layout, softmax in float32
}
EXTRA = {"olmo": ("OlmoForCausalLM", "AutoModelForCausalLM"), "smollm3": ("SmolLM3ForCausalLM", "AutoModelForCausalLM")}
TEXTS = coverage_sweep.TEXTS
NO_FLOAT64 = {  # transformers itself cannot run these in float64
    "qwen3_moe": "its grouped-matmul experts refuse float64 (RuntimeError inside the library)",
    "xglm": "its float32 torch.full of float64's minimum overflows (RuntimeError inside the library)",
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model_type", SAMPLE)
def test_more_families_verify_from_weights(model_type, dtype):
    if dtype == "float64" and model_type in NO_FLOAT64:
        pytest.skip(NO_FLOAT64[model_type])
    result = coverage_sweep.run_one(model_type, *SAMPLE[model_type], seconds=120, dtype=getattr(torch, dtype))
    assert result.outcome == "verified from weights", result


def built(monkeypatch, model_type: str, **changes):
    """The sweep's tiny model of `model_type` (its first class), with `changes` set on its config."""
    tiny = coverage_sweep.tiny_config

    def changed(kind, vocab_size):
        config = tiny(kind, vocab_size)
        for name, value in changes.items():
            setattr(config, name, value)
        return config

    with monkeypatch.context() as patch:
        patch.setattr(coverage_sweep, "tiny_config", changed)
        loaded = coverage_sweep.build(model_type, *(SAMPLE.get(model_type) or EXTRA[model_type]))
    assert loaded.depth == FROM_WEIGHTS
    return loaded


def error(loaded, **family_changes) -> float:
    """max |Δ| of a forward pass over TEXTS, the family changed by `family_changes` (a control)."""
    changed = dataclasses.replace(loaded, family=dataclasses.replace(loaded.family, **family_changes))
    return compare_text_model(changed, TEXTS).max_abs_err


def test_granite_without_its_multiplier_does_not_match(monkeypatch):
    loaded = built(monkeypatch, "granite", attention_multiplier=0.5)
    assert error(loaded) <= 1e-5 and error(loaded, scale=None) > 1e-3


def test_olmo_clip_qkv_is_applied(monkeypatch):
    """The library clamps its projections' outputs in place, so the control runs them again unclamped."""
    loaded = built(monkeypatch, "olmo", clip_qkv=0.3)  # well inside the projections' range: many values clamped
    assert error(loaded) <= 1e-5 and error(loaded, clip=lambda config: None) > 1e-3


def test_olmo2_without_its_projection_norm_does_not_match(monkeypatch):
    loaded = built(monkeypatch, "olmo2")
    assert error(loaded) <= 1e-5 and error(loaded, qk_norm=None) > 1e-3


def test_gemma3_norm_offset_and_rotary_per_layer_type(monkeypatch):
    loaded = built(monkeypatch, "gemma3_text", layer_types=["sliding_attention", "full_attention"])
    config = loaded.config
    assert config.layer_types == ["sliding_attention", "full_attention"]
    thetas = {kind: config.rope_parameters[kind]["rope_theta"] for kind in config.layer_types}
    assert thetas["sliding_attention"] != thetas["full_attention"], "the two layer types rotate differently"
    assert error(loaded) <= 1e-5
    assert error(loaded, qk_norm_offset=0.0) > 1e-3
    right = recompute.rotary_settings
    monkeypatch.setattr(recompute, "rotary_settings", lambda config, family, layer: right(config, family, 1))
    assert error(loaded) > 1e-3  # the full-attention layer's rotary on the sliding layer too


def test_smollm3_layers_without_rotary(monkeypatch):
    loaded = built(monkeypatch, "smollm3", no_rope_layers=[1, 0])  # layer 1 has no rotary (NoPE)
    assert error(loaded) <= 1e-5 and error(loaded, rotary_on=None) > 1e-3


def test_gpt_neo_scale_and_local_window(monkeypatch):
    loaded = built(monkeypatch, "gpt_neo")
    assert loaded.config.attention_layers == ["global", "local"]
    assert error(loaded) <= 1e-5
    assert error(loaded, scale=None) > 1e-3
    assert error(loaded, window=None) > 1e-3


def test_partial_rotary_families_refuse_their_qk_layernorm():
    from attn_demos.adapters.families import family_for
    from attn_demos.errors import UnsupportedModelError

    config = coverage_sweep.tiny_config("phi", 100)
    config.qk_layernorm = True
    with pytest.raises(UnsupportedModelError, match="qk_layernorm"):
        family_for("phi", config)
