"""Compare the library's attention with the from-scratch recomputation, kind by kind, layer by
layer, head by head."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from attn_demos.adapters.extract import (
    ForwardResult,
    Side,
    causal_teacher_forced,
    forward_with_attention,
    teacher_forced_inputs,
    tokenize,
    vision_side,
)
from attn_demos.adapters.families import DECODER
from attn_demos.adapters.generation import (
    CausalGenerationResult,
    GenerationResult,
    generate_causal_with_attention,
    generate_with_attention,
)
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps

DEFAULT_TOLERANCE = 1e-5


@dataclass
class LayerResult:
    kind: str
    layer: int
    max_abs_err: float
    heads: list[float]


@dataclass
class ComparisonReport:
    model: str
    architecture: str
    tolerance: float
    results: list[LayerResult] = field(default_factory=list)

    @property
    def max_abs_err(self) -> float:
        return max((r.max_abs_err for r in self.results), default=float("nan"))

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.max_abs_err <= self.tolerance for r in self.results)

    def kinds(self) -> dict[str, float]:
        """kind -> worst error over its layers."""
        worst: dict[str, float] = {}
        for r in self.results:
            old = worst.get(r.kind, 0.0)
            worst[r.kind] = r.max_abs_err if r.max_abs_err != r.max_abs_err else max(old, r.max_abs_err)  # NaN stays NaN
        return worst

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "architecture": self.architecture,
            "ok": self.ok,
            "tolerance": self.tolerance,
            "max_abs_err": self.max_abs_err if self.results else None,  # JSON has no NaN
            "results": [asdict(r) for r in self.results],
        }


def layer_errors(reference: AttentionMaps, candidate: torch.Tensor, kind: str | None = None) -> list[LayerResult]:
    """Max |Δ| per layer and head over real query rows (every key, so padded keys must be 0 in both).

    reference.weights and candidate: (B, L, H, Tq, Tk).
    """
    if candidate.shape != reference.weights.shape:
        raise ValueError(f"{reference.kind}: shapes differ, {tuple(candidate.shape)} vs {tuple(reference.weights.shape)}")
    diff = (reference.weights.double() - candidate.double()).abs()  # (B, L, H, Tq, Tk)
    real_rows = reference.query_mask[:, None, None, :, None].to(diff.device)  # (B, 1, 1, Tq, 1)
    diff = torch.where(real_rows, diff, 0.0)  # padded query rows are not data (the library may leave NaN there)
    per_head = diff.amax(dim=(0, 3, 4))  # (L, H)
    return [
        LayerResult(kind or reference.kind, layer, float(row.max()), [float(x) for x in row])
        for layer, row in enumerate(per_head)
    ]


def report_forward(result: ForwardResult) -> list[LayerResult]:
    """Library vs recomputed, for every kind the forward pass produced."""
    return [r for kind, maps in result.maps.items() for r in layer_errors(maps, result.recomputed[kind])]


def report_generation(generated: GenerationResult, forced: ForwardResult) -> list[LayerResult]:
    """Attention gathered from generate() vs a teacher-forced pass over the final sequence."""
    results = []
    for kind in ("decoder", "cross"):
        results += layer_errors(forced.maps[kind], generated.maps[kind].weights, kind=f"{kind} (generate)")
    return results


def compare_text_model(
    loaded: LoadedModel,
    texts: list[str],
    tolerance: float = DEFAULT_TOLERANCE,
    num_beams: int = 4,
    max_new_tokens: int = 20,
    scale_override: float | None = None,
) -> ComparisonReport:
    """Encoders: one padded forward pass. Encoder-decoders: generate (beam search), then a
    teacher-forced pass over the output, recomputed, and checked against the gathered steps.
    Decoder-only models: the prompt's forward pass, then greedy and beam generation, each checked
    like an encoder-decoder's."""
    report = ComparisonReport(loaded.source, loaded.architecture, tolerance)
    inputs, source = tokenize(loaded, texts)
    if loaded.is_decoder_only:
        report.results = compare_causal(loaded, inputs, source, num_beams, max_new_tokens, scale_override)
        return report
    if not loaded.is_encoder_decoder:
        report.results = report_forward(forward_with_attention(loaded, inputs, source, scale_override=scale_override))
        return report
    generated = generate_with_attention(loaded, inputs, source, num_beams=num_beams, max_new_tokens=max_new_tokens)
    forced = forward_with_attention(
        loaded,
        teacher_forced_inputs(inputs, generated.sequences),
        source,
        generated.target,
        scale_override=scale_override,
    )
    report.results = report_forward(forced) + report_generation(generated, forced)
    return report


def report_causal_generation(generated: CausalGenerationResult, forced: ForwardResult) -> list[LayerResult]:
    """Decoder-only: attention gathered from generate() vs a teacher-forced pass over the final sequence."""
    return layer_errors(forced.maps[DECODER], generated.maps[DECODER].weights, kind=f"{DECODER} (generate)")


def generate_and_force(loaded: LoadedModel, inputs: dict, num_beams: int, max_new_tokens: int, scale_override=None):
    """Decoder-only: generate, then the recomputed teacher-forced pass over prompt + output.
    Returns (CausalGenerationResult, ForwardResult)."""
    generated = generate_causal_with_attention(loaded, inputs, num_beams=num_beams, max_new_tokens=max_new_tokens)
    forced_inputs = causal_teacher_forced(inputs, generated.sequences)
    forced = forward_with_attention(loaded, forced_inputs, generated.side, scale_override=scale_override)
    return generated, forced


def compare_causal(
    loaded: LoadedModel, inputs: dict, source: Side, num_beams: int, max_new_tokens: int, scale_override=None
) -> list[LayerResult]:
    """The prompt's forward pass, then greedy and (num_beams > 1) beam generation, each recomputed."""
    results = report_forward(forward_with_attention(loaded, inputs, source, scale_override=scale_override))
    for beams in sorted({1, num_beams}):
        generated, forced = generate_and_force(loaded, inputs, beams, max_new_tokens, scale_override)
        results += report_forward(forced) + report_causal_generation(generated, forced)
    return _worst_per_layer(results)


def _worst_per_layer(results: list[LayerResult]) -> list[LayerResult]:
    """One result per (kind, layer): the worst of each head over several passes."""
    merged: dict[tuple[str, int], LayerResult] = {}
    for r in results:
        old = merged.get((r.kind, r.layer))
        if old is None:
            merged[r.kind, r.layer] = LayerResult(r.kind, r.layer, r.max_abs_err, list(r.heads))
        else:
            old.heads = [max(a, b) for a, b in zip(old.heads, r.heads)]
            old.max_abs_err = max(old.max_abs_err, r.max_abs_err)
    return list(merged.values())


def compare_vision_model(
    loaded: LoadedModel, pixel_values: torch.Tensor, tolerance: float = DEFAULT_TOLERANCE
) -> ComparisonReport:
    """pixel_values: (B, 3, H, W) already preprocessed."""
    report = ComparisonReport(loaded.source, loaded.architecture, tolerance)
    side: Side = vision_side(loaded, pixel_values.shape[0])
    pixel_values = pixel_values.to(next(loaded.model.parameters()).dtype)
    result = forward_with_attention(loaded, {"pixel_values": pixel_values}, side)
    report.results = report_forward(result)
    return report
