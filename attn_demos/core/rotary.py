"""Rotary position embeddings (RoFormer, Su et al. 2021), in the half-split layout.

Each of the first `rotary_dim` channels of a head is paired with the channel rotary_dim/2 further
on: pair i = (x[i], x[i + rotary_dim/2]) is rotated by the angle position · θ^(-2i/rotary_dim).
Channels past rotary_dim (partial rotary, as in GPT-NeoX) pass unchanged. Because a rotation by
angle a then by -b is one by a - b, q·k of rotated vectors depends only on the distance between
their positions.

Rotary scalings stretch the frequencies for contexts longer than the model was trained on; each is
written here from its definition, with the parameters a config names (transformers' rope_parameters
keys), and evaluated in float32 in the same order transformers evaluates it, so that a float64
model sees the very same angles:

- linear (position interpolation, kaiokendev 2023): every frequency divided by `factor`;
- dynamic (NTK-aware, bloc97/emozilla 2023): past max_position_embeddings, θ grows with the length;
- llama3 (Llama 3.1): low frequencies divided by `factor`, high ones kept, a smooth ramp between;
- yarn (Peng et al. 2023): a ramp between interpolated and original frequencies by wavelength,
  and an attention factor (mscale) on cos and sin, which multiplies every logit by its square;
- longrope (Ding et al. 2024, Phi-3): a per-frequency divisor, short or long by the length, and an
  attention factor likewise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

# The angles are computed in float32 whatever the model's dtype (transformers does so; a float64
# model's rotary is float32-accurate in the angles, and the recomputation must use the same angles).
ANGLE_DTYPE = torch.float32


def rotary_dimension(head_dim: int, fraction: float) -> int:
    """How many channels of a head are rotated: int(head_dim · fraction), an even number."""
    rotary_dim = int(head_dim * fraction)
    if rotary_dim % 2 or rotary_dim <= 0:
        raise ValueError(f"rotary fraction {fraction} of head size {head_dim} gives {rotary_dim} channels, not a positive even number")
    return rotary_dim


def inverse_frequencies(rotary_dim: int, theta: float | torch.Tensor, dtype: torch.dtype = ANGLE_DTYPE) -> torch.Tensor:
    """(rotary_dim/2,) θ^(-2i/rotary_dim) for i = 0 … rotary_dim/2 - 1, computed as 1 / θ^(2i/rotary_dim)."""
    exponents = torch.arange(0, rotary_dim, 2, dtype=dtype) / rotary_dim  # (rotary_dim/2,)
    return 1.0 / (theta**exponents)


def rotary_angles(position_ids: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """position_ids (B, T) integers, frequencies (r/2,) -> angles (B, T, r/2) = position · frequency."""
    return position_ids[..., None].to(frequencies.dtype) * frequencies  # (B, T, r/2)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor, attention_factor: float = 1.0) -> torch.Tensor:
    """Rotate the first 2·(r/2) channels of every head of x (B, H, T, d) by angles (B, T, r/2),
    scaled by `attention_factor` (yarn, longrope; 1 otherwise).

    Pair i is (x[..., i], x[..., i + r/2]): (a, b) -> f·(a·cos − b·sin, b·cos + a·sin).
    """
    half = angles.shape[-1]
    cos = (angles.cos() * attention_factor).to(x.dtype)[:, None]  # (B, 1, T, r/2)
    sin = (angles.sin() * attention_factor).to(x.dtype)[:, None]  # (B, 1, T, r/2)
    first, second, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]  # (B, H, T, r/2) ×2, (B, H, T, d-r)
    return torch.cat([first * cos - second * sin, second * cos + first * sin, rest], dim=-1)  # (B, H, T, d)


# --- rotary scalings ---------------------------------------------------------------------------

ROTARY_SCALINGS = ("default", "linear", "dynamic", "llama3", "yarn", "longrope")  # rope_type values
YARN_BETA_FAST, YARN_BETA_SLOW = 32, 1  # yarn's ramp bounds, in rotations, when the config names none


def scaled_frequencies(
    rotary_dim: int, parameters: Mapping, max_positions: int, length: int
) -> tuple[torch.Tensor, float]:
    """(frequencies (rotary_dim/2,) float32, attention factor) of the rotary scaling `parameters`
    names (rope_type, rope_theta and the type's own keys), for a pass whose largest position is
    length − 1, in a model of max_positions positions (max_position_embeddings)."""
    kind = parameters.get("rope_type", "default")
    theta = parameters["rope_theta"]
    if kind == "default":
        return inverse_frequencies(rotary_dim, theta), 1.0
    if kind == "linear":
        return linear_frequencies(rotary_dim, theta, parameters["factor"]), 1.0
    if kind == "dynamic":
        return dynamic_frequencies(rotary_dim, theta, parameters["factor"], max_positions, length), 1.0
    if kind == "llama3":
        frequencies = llama3_frequencies(
            rotary_dim, theta, parameters["factor"], parameters["low_freq_factor"], parameters["high_freq_factor"],
            parameters["original_max_position_embeddings"],
        )
        return frequencies, 1.0
    original = parameters["original_max_position_embeddings"]
    factor = parameters.get("factor") or max_positions / original  # None: the ratio of the two lengths
    if kind == "yarn":
        frequencies = yarn_frequencies(
            rotary_dim, theta, factor, original, parameters.get("beta_fast") or YARN_BETA_FAST,
            parameters.get("beta_slow") or YARN_BETA_SLOW, parameters.get("truncate", True),
        )
        given = parameters.get("attention_factor")
        return frequencies, given if given is not None else yarn_attention_factor(
            factor, parameters.get("mscale"), parameters.get("mscale_all_dim")
        )
    if kind == "longrope":
        divisors = parameters["long_factor"] if length > original else parameters["short_factor"]
        given = parameters.get("attention_factor")
        return longrope_frequencies(rotary_dim, theta, divisors), given if given is not None else longrope_attention_factor(
            factor, original
        )
    raise ValueError(f"rotary scaling {kind!r} is not one of {', '.join(ROTARY_SCALINGS)}")


def linear_frequencies(rotary_dim: int, theta: float, factor: float) -> torch.Tensor:
    """(r/2,) every frequency divided by `factor`: position p turns as p/factor did unscaled."""
    return inverse_frequencies(rotary_dim, theta) / factor


def dynamic_frequencies(rotary_dim: int, theta: float, factor: float, max_positions: int, length: int) -> torch.Tensor:
    """(r/2,) unscaled up to max_positions; past it, θ becomes
    θ · (factor·length/max_positions − (factor − 1))^(r/(r−2)), evaluated in float32."""
    exponent = rotary_dim / (rotary_dim - 2)
    if length <= max_positions:
        return inverse_frequencies(rotary_dim, theta * (factor * max_positions / max_positions - (factor - 1)) ** exponent)
    stretch = factor * torch.tensor(length) / max_positions - (factor - 1)  # 0-d float32 (an integer tensor times a float)
    return inverse_frequencies(rotary_dim, theta * stretch**exponent)


def llama3_frequencies(
    rotary_dim: int, theta: float, factor: float, low_freq_factor: float, high_freq_factor: float, original: int
) -> torch.Tensor:
    """(r/2,) by wavelength λ = 2π/frequency: λ < original/high_freq_factor kept, λ > original/low_freq_factor
    divided by `factor`, and between, (1 − s)·f/factor + s·f with s = (original/λ − low) / (high − low)."""
    frequencies = inverse_frequencies(rotary_dim, theta)  # (r/2,)
    wavelengths = 2 * math.pi / frequencies  # (r/2,)
    long_wavelength, short_wavelength = original / low_freq_factor, original / high_freq_factor
    scaled = torch.where(wavelengths > long_wavelength, frequencies / factor, frequencies)  # (r/2,)
    smooth = (original / wavelengths - low_freq_factor) / (high_freq_factor - low_freq_factor)  # (r/2,)
    between = (1 - smooth) * scaled / factor + smooth * scaled  # (r/2,)
    medium = ~(wavelengths < short_wavelength) * ~(wavelengths > long_wavelength)  # (r/2,)
    return torch.where(medium, between, scaled)


def yarn_frequencies(
    rotary_dim: int, theta: float, factor: float, original: int, beta_fast: float, beta_slow: float, truncate: bool
) -> torch.Tensor:
    """(r/2,) frequency i: the original θ^(-2i/r) where it turns more than beta_fast times over the
    original length, divided by `factor` where it turns fewer than beta_slow times, and a linear
    ramp in i between the two (the channel bounds floored/ceiled when `truncate`)."""
    powers = theta ** (torch.arange(0, rotary_dim, 2).to(dtype=ANGLE_DTYPE) / rotary_dim)  # (r/2,) θ^(2i/r)
    original_frequencies = 1.0 / powers  # (r/2,)
    interpolated = 1.0 / (factor * powers)  # (r/2,)

    def channel(rotations: float) -> float:  # the channel index whose frequency turns `rotations` times
        return rotary_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = channel(beta_fast), channel(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, rotary_dim - 1)
    if low == high:
        high += 0.001  # the ramp needs a width
    ramp = torch.clamp((torch.arange(rotary_dim // 2, dtype=ANGLE_DTYPE) - low) / (high - low), 0, 1)  # (r/2,) 0 -> 1
    keep = 1 - ramp  # (r/2,) the original frequency's share
    return interpolated * (1 - keep) + original_frequencies * keep


def yarn_scale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's eq. 21: 0.1·mscale·ln(factor) + 1 (1 for factor ≤ 1)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_attention_factor(factor: float, mscale: float | None = None, mscale_all_dim: float | None = None) -> float:
    """yarn_scale(factor), or yarn_scale(factor, mscale) / yarn_scale(factor, mscale_all_dim) when both are named."""
    if mscale and mscale_all_dim:
        return float(yarn_scale(factor, mscale) / yarn_scale(factor, mscale_all_dim))
    return yarn_scale(factor)


def longrope_frequencies(rotary_dim: int, theta: float, divisors) -> torch.Tensor:
    """(r/2,) frequency i divided by divisors[i] (the short or the long list of the config)."""
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim  # (r/2,)
    return 1.0 / (torch.tensor(divisors, dtype=ANGLE_DTYPE) * theta**exponents)


def longrope_attention_factor(factor: float, original: int) -> float:
    """√(1 + ln(factor) / ln(original)) (1 for factor ≤ 1)."""
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
