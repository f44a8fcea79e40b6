"""Decoder-only LLM families, ALBERT, DeiT, ELECTRA and XLM-R: the library's attention against the
from-scratch recomputation, forward and generation, and controls that must fail."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import DECODER_FAMILIES, MORE_ENCODER_FAMILIES

from attn_demos.adapters import recompute
from attn_demos.adapters.compare import compare_text_model
from attn_demos.adapters.extract import causal_teacher_forced, forward_with_attention, tokenize, vision_side
from attn_demos.adapters.generation import generate_causal_with_attention
from attn_demos.adapters.loading import load_model

TEXTS = ["The cat sat on the mat.", "Attention is all you need.", "the dog is in the house and the cat sat on the mat"]
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
FLOAT32_SOFTMAX = 1e-6  # the library's own generate vs forward, when it runs softmax in float32
MAX_NEW_TOKENS = 8


def real_row_error(library: torch.Tensor, recomputed: torch.Tensor, query_mask: torch.Tensor) -> float:
    """max |Δ| over real query rows; (B, L, H, Tq, Tk) tensors, query_mask (B, Tq)."""
    assert library.shape == recomputed.shape
    rows = query_mask[:, None, None, :, None].expand_as(library)
    return float((library.double() - recomputed.double()).abs()[rows].max())


def with_family(loaded, **changes):
    """The same loaded model, recomputed with a changed family (a control)."""
    return dataclasses.replace(loaded, family=dataclasses.replace(loaded.family, **changes))


# --- decoder-only forward ------------------------------------------------------------------------


@pytest.mark.parametrize("batch", ["single", "padded"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_decoder_families_recompute_within_tolerance(tiny_model, family, dtype, batch):
    loaded = tiny_model(family, dtype)
    texts = TEXTS[:1] if batch == "single" else TEXTS
    inputs, side = tokenize(loaded, texts)
    if batch == "padded":
        assert not side.mask.all() and not side.mask[:, -1].logical_not().any(), "left padding"
    result = forward_with_attention(loaded, inputs, side)
    assert set(result.maps) == set(result.recomputed) == {"decoder"}
    maps = result.maps["decoder"]
    assert maps.weights.dtype == getattr(torch, dtype)
    assert maps.num_heads == loaded.config.num_attention_heads
    library, recomputed = maps.weights, result.recomputed["decoder"]  # (B, L, H, T, T)
    upper = torch.ones(library.shape[-2:], dtype=torch.bool).triu(1)
    assert (recomputed[..., upper] == 0).all(), "causal"
    if dtype == "float64" and batch == "padded" and loaded.family.softmax_dtype is not None:
        # Measured defect of transformers 5 (eager, float64, float32 softmax, left padding): a padded
        # query row has every key masked with float64's minimum, which is -inf in float32, so its
        # softmax is NaN; that NaN enters the next layer's keys and values at the padded positions
        # and makes whole real rows NaN there. Layer 0 and every finite number must still match.
        real = maps.query_mask[:, None, None, :, None].expand_as(library)
        assert torch.isnan(library[:, 1:][real[:, 1:]]).any(), "the library now gives numbers: make this a normal check"
        assert real_row_error(library[:, :1], recomputed[:, :1], maps.query_mask) <= TOLERANCE[dtype]
        finite = real & ~torch.isnan(library)
        assert float((library[finite] - recomputed[finite]).abs().max()) <= TOLERANCE[dtype]
        return
    error = real_row_error(library, recomputed, maps.query_mask)
    assert error <= TOLERANCE[dtype], f"{family}: max |Δ| {error:.2e}"
    assert float(library[..., :, :].std()) > 0.05, "attention far from uniform, so the check means something"


def test_float64_rotary_families_softmax_in_float32(tiny_model):
    """The library runs these softmaxes in float32 even for float64 models; a float64 softmax differs."""
    loaded = tiny_model("llama", "float64")
    inputs, side = tokenize(loaded, TEXTS[:1])
    exact = forward_with_attention(loaded, inputs, side)
    wide = forward_with_attention(with_family(loaded, softmax_dtype=None), inputs, side)
    library = exact.maps["decoder"].weights
    assert real_row_error(library, exact.recomputed["decoder"], side.mask) <= 1e-12
    assert 1e-12 < real_row_error(library, wide.recomputed["decoder"], side.mask) <= 1e-6


# --- decoder-only generation ---------------------------------------------------------------------


def library_teacher_forced(loaded, inputs, sequences) -> torch.Tensor:
    """The model's own forward pass over prompt + output (minus the last token): (B, L, H, T, T)."""
    with torch.no_grad():
        out = loaded.model(**causal_teacher_forced(inputs, sequences), output_attentions=True)
    return torch.stack(out.attentions, dim=1)


@pytest.mark.parametrize("batch", ["single", "padded"])
@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_decoder_generation_gathered_along_beams_matches_teacher_forcing(tiny_model, family, num_beams, batch):
    loaded = tiny_model(family)
    texts = TEXTS[:1] if batch == "single" else TEXTS
    inputs, side = tokenize(loaded, texts)
    result = generate_causal_with_attention(loaded, inputs, num_beams=num_beams, max_new_tokens=MAX_NEW_TOKENS)
    with torch.no_grad():
        raw = loaded.model.generate(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], num_beams=num_beams,
            max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
        )
    assert torch.equal(result.sequences, raw)
    forced = library_teacher_forced(loaded, inputs, result.sequences)
    gathered = result.maps["decoder"]
    assert gathered.weights.shape == forced.shape
    assert gathered.query_mask[:, result.prompt_length - 1].all()
    error = real_row_error(forced, gathered.weights, gathered.query_mask)
    assert error <= TOLERANCE["float32"], f"{family}: gathered vs teacher-forced {error:.2e}"
    recomputed = forward_with_attention(loaded, causal_teacher_forced(inputs, result.sequences), result.side)
    assert real_row_error(forced, recomputed.recomputed["decoder"], gathered.query_mask) <= TOLERANCE["float32"]


@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_decoder_generation_float64(tiny_model, family):
    loaded = tiny_model(family, "float64")
    inputs, _ = tokenize(loaded, TEXTS[:1])
    result = generate_causal_with_attention(loaded, inputs, num_beams=3, max_new_tokens=MAX_NEW_TOKENS)
    forced_inputs = causal_teacher_forced(inputs, result.sequences)
    recomputed = forward_with_attention(loaded, forced_inputs, result.side)
    real = result.maps["decoder"].query_mask
    library = recomputed.maps["decoder"].weights
    assert real_row_error(library, recomputed.recomputed["decoder"], real) <= TOLERANCE["float64"]
    # generate() and a forward pass agree to float64 precision unless the library's softmax is float32
    gathered_error = real_row_error(library, result.maps["decoder"].weights, real)
    assert gathered_error <= (FLOAT32_SOFTMAX if loaded.family.softmax_dtype else TOLERANCE["float64"])


@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_compare_reports_decoder_and_generate_kinds(tiny_model, family):
    report = compare_text_model(tiny_model(family), TEXTS, num_beams=3, max_new_tokens=MAX_NEW_TOKENS)
    assert report.ok, report.kinds()
    assert set(report.kinds()) == {"decoder", "decoder (generate)"}
    layers = {r.layer for r in report.results if r.kind == "decoder (generate)"}
    assert layers == set(range(tiny_model(family).config.num_hidden_layers))
    assert {r["kind"] for r in report.to_dict()["results"]} == {"decoder", "decoder (generate)"}


def test_a_wrong_beam_gather_does_not_match(tiny_model, monkeypatch):
    from attn_demos.adapters import generation

    loaded = tiny_model("llama")
    inputs, _ = tokenize(loaded, TEXTS)
    right = generation._rows_per_step
    monkeypatch.setattr(generation, "_rows_per_step", lambda bi, b, s: right(None, b, s) * 3)  # row b·beams, beam 0
    result = generate_causal_with_attention(loaded, inputs, num_beams=3, max_new_tokens=MAX_NEW_TOKENS)
    forced = library_teacher_forced(loaded, inputs, result.sequences)
    assert real_row_error(forced, result.maps["decoder"].weights, result.maps["decoder"].query_mask) > 1e-4


# --- controls: a recomputation that skips a factor must not match --------------------------------


def control_error(loaded, texts=TEXTS) -> float:
    inputs, side = tokenize(loaded, texts)
    result = forward_with_attention(loaded, inputs, side)
    return real_row_error(result.maps["decoder"].weights, result.recomputed["decoder"], side.mask)


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma2", "phi3", "gpt_neox"])
def test_rotary_off_does_not_match(tiny_model, family):
    loaded = tiny_model(family)
    assert control_error(loaded) <= 1e-5
    assert control_error(with_family(loaded, rotary=None)) > 1e-3


def test_full_rotary_on_a_partial_rotary_model_does_not_match(tiny_model):
    loaded = tiny_model("gpt_neox")
    assert control_error(with_family(loaded, rotary="full")) > 1e-3


@pytest.mark.parametrize("family", ["mistral", "qwen2", "gemma2", "phi3"])
def test_a_wrong_window_does_not_match(tiny_model, family):
    loaded = tiny_model(family)
    window = loaded.family.window
    wider = with_family(loaded, window=lambda config, layer: None if window(config, layer) is None else window(config, layer) + 1)
    assert control_error(wider) > 1e-3
    assert control_error(with_family(loaded, window=None)) > 1e-3


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "phi3"])
def test_kv_heads_tiled_instead_of_grouped_do_not_match(tiny_model, monkeypatch, family):
    loaded = tiny_model(family)
    assert loaded.config.num_key_value_heads < loaded.config.num_attention_heads
    monkeypatch.setattr(recompute, "repeat_kv_heads", lambda x, heads: x.repeat(1, heads // x.shape[1], 1, 1))
    assert control_error(loaded) > 1e-3


def test_soft_cap_skipped_does_not_match(tiny_model):
    loaded = tiny_model("gemma2")
    assert control_error(with_family(loaded, softcap=None)) > 1e-3


def test_gemma2_with_the_usual_scale_does_not_match(tiny_model):
    loaded = tiny_model("gemma2")
    assert control_error(with_family(loaded, scale=None)) > 1e-3


def test_qwen3_without_qk_norm_does_not_match(tiny_model):
    assert control_error(with_family(tiny_model("qwen3"), qk_norm=None)) > 1e-3


def test_gpt2_ignoring_the_inverse_layer_scale_does_not_match(tiny_model):
    loaded = tiny_model("gpt2")
    assert loaded.config.scale_attn_by_inverse_layer_idx
    ignored = with_family(loaded, scale=lambda config, layer, d: d**-0.5)
    inputs, side = tokenize(ignored, TEXTS)
    result = forward_with_attention(ignored, inputs, side)
    library, recomputed = result.maps["decoder"].weights, result.recomputed["decoder"]
    assert real_row_error(library[:, :1], recomputed[:, :1], side.mask) <= 1e-5  # layer 0 divides by 1
    assert real_row_error(library[:, 1:], recomputed[:, 1:], side.mask) > 1e-3


@pytest.fixture(scope="module")
def upcast_gpt2(tmp_path_factory):
    from attn_demos.adapters.random_checkpoints import build_checkpoint

    return build_checkpoint("gpt2", tmp_path_factory.mktemp("upcast") / "gpt2", reorder_and_upcast_attn=True)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_gpt2_reorder_and_upcast_attn_recomputes_from_weights(upcast_gpt2, dtype):
    """reorder_and_upcast_attn: q·kᵀ and the softmax in float32, the weights then rounded to the
    model's dtype. Recomputed the same way, the core's float32 weights differ from the library's by
    that rounding only: half a unit in the last place of a weight below 1 (eps/4), plus float32's
    own tolerance. Without the upcast (q·kᵀ and softmax in the half dtype) they do not."""
    from attn_demos.adapters.attention_function import FROM_WEIGHTS
    from attn_demos.adapters.precision import tolerance_for

    loaded = load_model(str(upcast_gpt2), dtype=dtype)
    assert loaded.depth == FROM_WEIGHTS
    inputs, side = tokenize(loaded, TEXTS)
    result = forward_with_attention(loaded, inputs, side)
    bound = torch.finfo(getattr(torch, dtype)).eps / 4 * (dtype != "float32") + tolerance_for("float32", result.max_abs_logit)
    assert real_row_error(result.maps["decoder"].weights, result.recomputed["decoder"], side.mask) <= bound
    if dtype != "float32":  # in float32 the upcast changes nothing
        assert control_error(with_family(loaded, upcast=None)) > bound


def test_gpt2_reorder_and_upcast_attn_in_float64_is_refused_in_one_line(upcast_gpt2):
    from attn_demos.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="reorder_and_upcast_attn does not run in float64"):
        load_model(str(upcast_gpt2), dtype="float64")


def test_unsupported_rope_type_is_checked_at_the_attention_function(tmp_path):
    """proportional rotary is not recomputed from weights (not approximated by plain rotary): the
    model is checked at the attention function instead, and verifies there."""
    from attn_demos.adapters.attention_function import AT_FUNCTION
    from attn_demos.adapters.random_checkpoints import build_checkpoint

    rope = {"rope_type": "proportional", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    loaded = load_model(str(build_checkpoint("qwen2", tmp_path / "proportional", rope_parameters=rope)))
    assert loaded.depth == AT_FUNCTION and "'proportional' is not supported" in loaded.weights_refusal
    report = compare_text_model(loaded, TEXTS)
    assert report.ok and report.depth == AT_FUNCTION and set(report.kinds()) == {"decoder"}


# --- encoders ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", ["single", "padded"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("family", MORE_ENCODER_FAMILIES)
def test_more_encoders_recompute_within_tolerance(tiny_model, family, dtype, batch):
    loaded = tiny_model(family, dtype)
    texts = TEXTS[:1] if batch == "single" else TEXTS
    inputs, side = tokenize(loaded, texts)
    result = forward_with_attention(loaded, inputs, side)
    maps = result.maps["encoder"]
    assert maps.num_layers == loaded.config.num_hidden_layers
    assert real_row_error(maps.weights, result.recomputed["encoder"], maps.query_mask) <= TOLERANCE[dtype]


def test_albert_has_one_site_per_depth_on_one_shared_module(tiny_model):
    loaded = tiny_model("albert")
    sites = loaded.family.sites(loaded.model)
    assert [s.layer for s in sites] == list(range(loaded.config.num_hidden_layers))
    assert len({id(s.module) for s in sites}) == 1 and [s.call for s in sites] == [0, 1]
    inputs, side = tokenize(loaded, TEXTS[:1])
    result = forward_with_attention(loaded, inputs, side)
    weights = result.recomputed["encoder"]  # (1, L, H, T, T): depths differ, though the weights are shared
    assert float((weights[:, 0] - weights[:, 1]).abs().max()) > 1e-3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deit_recomputes_with_its_distillation_token(tiny_model, dtype):
    loaded = tiny_model("deit", dtype)
    config = loaded.config
    side = vision_side(loaded, 2)
    patches = (config.image_size // config.patch_size) ** 2
    assert side.tokens[0][:2] == ["[CLS]", "[DIST]"] and len(side.tokens[0]) == 2 + patches
    pixels = torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
    result = forward_with_attention(loaded, {"pixel_values": pixels.to(getattr(torch, dtype))}, side)
    maps = result.maps["vision"]
    assert maps.weights.shape[-1] == 2 + patches
    assert real_row_error(maps.weights, result.recomputed["vision"], maps.query_mask) <= TOLERANCE[dtype]
