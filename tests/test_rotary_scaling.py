"""Rotary scalings (linear, dynamic, llama3, yarn, longrope) recomputed from weights: the core's
frequencies against numbers derived by hand from each definition, tiny Llama / Qwen2 / Phi-3 models
with that scaling against the library within the dtype's tolerance, and controls that skip the
scaling (or only its attention factor) and must then fail."""

from __future__ import annotations

import math

import pytest
import torch

from attn_demos.adapters import recompute
from attn_demos.adapters.attention_function import FROM_WEIGHTS
from attn_demos.adapters.extract import forward_with_attention, tokenize
from attn_demos.adapters.loading import load_model
from attn_demos.adapters.precision import tolerance_for
from attn_demos.adapters.random_checkpoints import build_checkpoint
from attn_demos.core.rotary import apply_rotary, scaled_frequencies

LONG_TEXT = "the dog is in the house and the cat sat on the mat"  # 14 tokens with <s>
SHORT_TEXT = "The cat sat on the mat."  # 8 tokens with <s>
TEXTS = [SHORT_TEXT, LONG_TEXT]  # a left-padded batch of 14 positions
FLOAT32_RELATIVE = 1e-6  # a few float32 roundings of frequencies computed in float32


def frequencies(parameters: dict, rotary_dim: int, length: int, max_positions: int = 128):
    found, factor = scaled_frequencies(rotary_dim, {"rope_theta": 100.0, **parameters}, max_positions, length)
    return found.tolist(), factor


# --- hand-derived numbers ------------------------------------------------------------------------


def test_linear_divides_every_frequency_by_the_factor():
    # θ = 100, 4 channels: unscaled 100^0 = 1 and 100^(-2/4) = 0.1
    found, factor = frequencies({"rope_type": "linear", "factor": 4.0}, 4, 10)
    assert found == pytest.approx([0.25, 0.025], rel=FLOAT32_RELATIVE) and factor == 1.0


def test_dynamic_is_plain_up_to_the_model_length_then_raises_theta():
    parameters = {"rope_type": "dynamic", "factor": 2.0}
    assert frequencies(parameters, 4, 8, max_positions=8)[0] == pytest.approx([1.0, 0.1], rel=FLOAT32_RELATIVE)
    # 16 positions in an 8-position model: θ' = 100·(2·16/8 − 1)^(4/2) = 900, so 900^(-1/2) = 1/30
    found, factor = frequencies(parameters, 4, 16, max_positions=8)
    assert found == pytest.approx([1.0, 1 / 30], rel=FLOAT32_RELATIVE) and factor == 1.0


def test_llama3_keeps_short_wavelengths_divides_long_ones_and_blends_between():
    # θ = 10000, 6 channels: frequencies 1, 10^(-4/3), 10^(-8/3); wavelengths 2π/f ≈ 6.3, 135, 2916.
    # Original 2000 positions, low 1, high 16: long above 2000/1, short below 2000/16 = 125.
    parameters = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 16.0, "original_max_position_embeddings": 2000}
    found, factor = scaled_frequencies(6, parameters, 128, 10)
    middle = 10 ** (-4 / 3)
    blend = (2000 / (2 * math.pi / middle) - 1) / (16 - 1)  # ≈ 0.918: mostly the original frequency
    expected = [1.0, (1 - blend) * middle / 8 + blend * middle, 10 ** (-8 / 3) / 8]
    assert found.tolist() == pytest.approx(expected, rel=FLOAT32_RELATIVE) and factor == 1.0


def test_yarn_ramps_from_original_to_interpolated_frequencies_and_scales_attention():
    # θ = 10000, 8 channels, factor 4, original 64 positions. Channel of a frequency turning b times
    # over 64 positions: 8·ln(64 / (2πb)) / (2·ln 10000): b = 32 gives −0.50 (floored, then 0),
    # b = 1 gives 1.008 (ceiled: 2). Ramp over channels 0..3: 0, ½, 1, 1.
    parameters = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64}
    found, factor = scaled_frequencies(8, parameters, 256, 10)
    expected = [1.0, 0.1 * (0.5 + 0.5 / 4), 0.01 / 4, 0.001 / 4]
    assert found.tolist() == pytest.approx(expected, rel=FLOAT32_RELATIVE)
    assert factor == pytest.approx(0.1 * math.log(4) + 1)  # eq. 21 of the YaRN paper
    # without truncation the ramp runs from channel 0 to 1.008: channel 1 is 1/1.008 of the way
    untruncated, _ = scaled_frequencies(8, {**parameters, "truncate": False}, 256, 10)
    share = 1 / (8 * math.log(64 / (2 * math.pi)) / (2 * math.log(10000)))
    assert float(untruncated[1]) == pytest.approx(0.1 * (1 - share) + 0.1 / 4 * share, rel=FLOAT32_RELATIVE)


def test_yarn_attention_factor_from_mscale_and_mscale_all_dim():
    parameters = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64,
                  "mscale": 0.8, "mscale_all_dim": 0.5}
    _, factor = scaled_frequencies(8, parameters, 256, 10)
    assert factor == pytest.approx((0.08 * math.log(4) + 1) / (0.05 * math.log(4) + 1))
    _, given = scaled_frequencies(8, {**parameters, "attention_factor": 1.25}, 256, 10)
    assert given == 1.25


def test_longrope_divides_by_short_or_long_factors_by_length():
    # θ = 100, 4 channels: 1, 0.1; original 8 of 128 positions: factor 16, attention √(1 + ln 16 / ln 8) = √(7/3)
    parameters = {"rope_type": "longrope", "short_factor": [1.0, 2.0], "long_factor": [3.0, 4.0],
                  "original_max_position_embeddings": 8}
    short, factor = frequencies(parameters, 4, 8)
    assert short == pytest.approx([1.0, 0.05], rel=FLOAT32_RELATIVE) and factor == pytest.approx(math.sqrt(7 / 3))
    assert frequencies(parameters, 4, 9)[0] == pytest.approx([1 / 3, 0.025], rel=FLOAT32_RELATIVE)


def test_attention_factor_scales_the_rotated_channels_only():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 7.0, 8.0]).view(1, 1, 1, 6)  # (B, H, T, d): 4 rotated channels
    rotated = apply_rotary(x, torch.zeros(1, 1, 2), attention_factor=2.0)  # angle 0: no turn
    torch.testing.assert_close(rotated.view(6), torch.tensor([2.0, 4.0, 6.0, 8.0, 7.0, 8.0]))


# --- against the library -------------------------------------------------------------------------

LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32}
LONGROPE = {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
            "short_factor": [1.0, 3.0], "long_factor": [2.0, 7.0]}
CASES = {  # name -> (family, config changes, texts)
    "llama linear": ("llama", {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}}, TEXTS),
    "llama dynamic": (  # 14 positions in an 8-position model: θ grows
        "llama", {"rope_parameters": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 4.0},
                  "max_position_embeddings": 8}, TEXTS,
    ),
    "llama llama3": ("llama", {"rope_parameters": LLAMA3}, TEXTS),
    "llama yarn": ("llama", {"rope_parameters": YARN}, TEXTS),
    "qwen2 yarn": ("qwen2", {"rope_parameters": {**YARN, "mscale": 0.8, "mscale_all_dim": 0.5}}, TEXTS),
    "phi3 longrope short": ("phi3", {"rope_parameters": LONGROPE, "original_max_position_embeddings": 8}, [SHORT_TEXT]),
    "phi3 longrope long": ("phi3", {"rope_parameters": LONGROPE, "original_max_position_embeddings": 8}, TEXTS),
}
WITH_ATTENTION_FACTOR = ("llama yarn", "qwen2 yarn", "phi3 longrope short", "phi3 longrope long")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("rotary")
    return {name: build_checkpoint(family, root / name.replace(" ", "-"), **changes)
            for name, (family, changes, _) in CASES.items()}


def error_and_tolerance(loaded, texts) -> tuple[float, float]:
    """max |Δ| over real query rows, and the tolerance of the model's dtype for the logits met."""
    inputs, side = tokenize(loaded, texts, max_length=64)  # dynamic: past max_position_embeddings on purpose
    result = forward_with_attention(loaded, inputs, side)
    library, recomputed = result.maps["decoder"].weights, result.recomputed["decoder"]  # (B, L, H, T, T)
    rows = side.mask[:, None, None, :, None].expand_as(library)
    error = float((library.double() - recomputed.double()).abs()[rows].max())
    return error, tolerance_for(loaded.dtype, result.max_abs_logit)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_scaled_rotary_recomputes_from_weights_within_tolerance(folders, case, dtype):
    loaded = load_model(str(folders[case]), dtype=dtype)
    assert loaded.depth == FROM_WEIGHTS
    texts = CASES[case][2]
    if dtype == "float64":  # one text, unpadded: the library's float64 weights are NaN past layer 0 of a
        texts = texts[-1:]  # left-padded batch (its float32 softmax of float64's minimum; test_modern_families)
    error, tolerance = error_and_tolerance(loaded, texts)
    assert error <= tolerance, f"{case} {dtype}: max |Δ| {error:.2e} > {tolerance:.2e}"


@pytest.mark.parametrize("case", CASES)
def test_skipping_the_scaling_does_not_match(folders, case, monkeypatch):
    loaded = load_model(str(folders[case]))

    def plain(rotary_dim, parameters, max_positions, length):
        return scaled_frequencies(rotary_dim, {"rope_theta": parameters["rope_theta"]}, max_positions, length)

    monkeypatch.setattr(recompute, "scaled_frequencies", plain)
    error, tolerance = error_and_tolerance(loaded, CASES[case][2])
    assert error > 100 * tolerance, f"{case}: plain rotary gives {error:.2e}"


@pytest.mark.parametrize("case", WITH_ATTENTION_FACTOR)
def test_skipping_only_the_attention_factor_does_not_match(folders, case, monkeypatch):
    loaded = load_model(str(folders[case]))

    def unscaled(*args):
        found, _ = scaled_frequencies(*args)
        return found, 1.0

    monkeypatch.setattr(recompute, "scaled_frequencies", unscaled)
    error, tolerance = error_and_tolerance(loaded, CASES[case][2])
    assert error > 100 * tolerance, f"{case}: no attention factor gives {error:.2e}"


def test_longrope_short_and_long_factors_differ(folders, monkeypatch):
    """The long text must take the long factors: recomputing it with the short ones fails."""
    loaded = load_model(str(folders["phi3 longrope long"]))

    def always_short(rotary_dim, parameters, max_positions, length):
        return scaled_frequencies(rotary_dim, parameters, max_positions, min(length, 8))

    monkeypatch.setattr(recompute, "scaled_frequencies", always_short)
    error, tolerance = error_and_tolerance(loaded, TEXTS)
    assert error > 100 * tolerance
