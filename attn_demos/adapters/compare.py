"""Compare the library's attention with the from-scratch recomputation, kind by kind, layer by
layer, head by head; or, with a fused kernel (sdpa), verify the recomputation by the output."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from attn_demos.adapters.extract import (
    ForwardResult,
    Side,
    causal_teacher_forced,
    forward_with_attention,
    target_side,
    teacher_forced_inputs,
    tokenize,
    vision_side,
)
from attn_demos.adapters.families import DECODER
from attn_demos.adapters.generation import (
    CausalGenerationResult,
    GenerationResult,
    generate_causal_with_attention,
    generate_plain,
    generate_with_attention,
)
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps
from attn_demos.adapters.precision import EAGER, tolerance_for
from attn_demos.adapters.verify import forward_with_verification

PERCENTILES = (50, 90, 99)
MEASURES = {
    "eager": "max |Δ| between the library's and the recomputed attention weights",
    "sdpa": "max |Δ| between the module's own output and recomputed weights·v, ÷ max |module output| of the layer",
}


@dataclass
class LayerResult:
    kind: str
    layer: int
    max_abs_err: float
    heads: list[float]


@dataclass
class ComparisonReport:
    """Errors per input, kind, layer and head, and the facts of the run that produced them.

    inputs: one dict per input, kind -> (L, H) float64 tensor of that head's max |Δ| (see MEASURES).
    run: device, dtype, attn_implementation, batch size, beams, runtime, versions, dataset…
    """

    model: str
    architecture: str
    tolerance: float
    inputs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    input_tokens: list[int] = field(default_factory=list)  # real input tokens (patches) of each input

    def add(self, errors: dict[str, torch.Tensor]) -> None:
        """errors: kind -> (B, L, H) for one batch; appends B inputs."""
        batch = next(iter(errors.values())).shape[0]
        for b in range(batch):
            self.inputs.append({kind: e[b].double().cpu() for kind, e in errors.items()})

    @property
    def results(self) -> list[LayerResult]:
        """Worst error per kind and layer (and per head) over every input."""
        out = []
        for kind in self._kinds():
            worst = torch.stack([i[kind] for i in self.inputs if kind in i]).amax(dim=0)  # (L, H)
            out += [
                LayerResult(kind, layer, float(row.max()), [float(x) for x in row]) for layer, row in enumerate(worst)
            ]
        return out

    def _kinds(self) -> list[str]:
        return list(dict.fromkeys(kind for i in self.inputs for kind in i))

    @property
    def max_abs_err(self) -> float:
        return max((r.max_abs_err for r in self.results), default=float("nan"))

    @property
    def ok(self) -> bool:
        return bool(self.inputs) and all(r.max_abs_err <= self.tolerance for r in self.results)

    def kinds(self) -> dict[str, float]:
        """kind -> worst error over its layers."""
        worst: dict[str, float] = {}
        for r in self.results:
            old = worst.get(r.kind, 0.0)
            worst[r.kind] = r.max_abs_err if r.max_abs_err != r.max_abs_err else max(old, r.max_abs_err)  # NaN stays NaN
        return worst

    def input_errors(self) -> list[float]:
        """Max error of each input over every kind, layer and head."""
        return [max(float(e.max()) for e in i.values()) for i in self.inputs]

    def head_error_summary(self) -> dict[str, float]:
        """Mean and percentiles of the max error of every (input, kind, layer, head)."""
        values = torch.cat([e.flatten() for i in self.inputs for e in i.values()]).numpy()  # (N·Σ L·H,)
        summary = {"mean": float(values.mean())}
        summary.update({f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES})
        return summary

    def extend(self, other: ComparisonReport) -> None:
        """Append another report's inputs (the same model, later inputs)."""
        self.inputs += other.inputs
        self.input_tokens += other.input_tokens

    def to_dict(self) -> dict:
        per_input = self.input_errors()
        return {
            "model": self.model,
            "architecture": self.architecture,
            "ok": self.ok,
            "tolerance": self.tolerance,
            "measure": MEASURES[self.run.get("attn_implementation", "eager")],
            "max_abs_err": self.max_abs_err if self.inputs else None,  # JSON has no NaN
            "num_inputs": len(self.inputs),
            "num_tokens": sum(self.input_tokens),
            "input_tokens": self.input_tokens,
            **self.run,
            "input_max_abs_err": per_input,
            "worst_input": max(range(len(per_input)), key=per_input.__getitem__) if per_input else None,
            "head_max_abs_err": self.head_error_summary() if self.inputs else None,
            "results": [vars(r) for r in self.results],
        }


def head_errors(reference: AttentionMaps, candidate: torch.Tensor) -> torch.Tensor:
    """Max |Δ| per example, layer and head over real query rows (every key, so padded keys must be
    0 in both): (B, L, H) float64 on the CPU. reference.weights and candidate: (B, L, H, Tq, Tk).

    Computed one layer at a time, in float64 for float64 maps and float32 otherwise (the
    difference of two half-precision numbers is exact in float32).
    """
    if candidate.shape != reference.weights.shape:
        raise ValueError(f"{reference.kind}: shapes differ, {tuple(candidate.shape)} vs {tuple(reference.weights.shape)}")
    work = torch.float64 if torch.float64 in (reference.weights.dtype, candidate.dtype) else torch.float32
    rows = reference.query_mask.to(candidate.device)[:, None, :, None]  # (B, 1, Tq, 1)
    per_layer = []
    for layer in range(candidate.shape[1]):
        diff = (reference.weights[:, layer].to(work) - candidate[:, layer].to(work)).abs()  # (B, H, Tq, Tk)
        diff = torch.where(rows, diff, 0.0)  # padded query rows are not data (the library may leave NaN there)
        per_layer.append(diff.amax(dim=(2, 3)))  # (B, H)
    return torch.stack(per_layer, dim=1).double().cpu()  # (B, L, H)


def layer_errors(reference: AttentionMaps, candidate: torch.Tensor, kind: str | None = None) -> list[LayerResult]:
    """Max |Δ| per layer and head over every example: head_errors, worst over the batch."""
    worst = head_errors(reference, candidate).amax(dim=0)  # (L, H)
    return [
        LayerResult(kind or reference.kind, layer, float(row.max()), [float(x) for x in row])
        for layer, row in enumerate(worst)
    ]


def forward_errors(result: ForwardResult) -> dict[str, torch.Tensor]:
    """kind -> (B, L, H): library vs recomputed, for every kind the forward pass produced."""
    return {kind: head_errors(maps, result.recomputed[kind]) for kind, maps in result.maps.items()}


def generation_errors(generated: GenerationResult, forced: ForwardResult) -> dict[str, torch.Tensor]:
    """Attention gathered from generate() vs a teacher-forced pass over the final sequence."""
    return {f"{kind} (generate)": head_errors(forced.maps[kind], generated.maps[kind].weights) for kind in ("decoder", "cross")}


def _new_report(loaded: LoadedModel, tolerance: float | None) -> ComparisonReport:
    tolerance = tolerance_for(loaded.dtype) if tolerance is None else tolerance
    return ComparisonReport(loaded.source, loaded.architecture, tolerance)


def compare_text_model(
    loaded: LoadedModel,
    texts: list[str],
    tolerance: float | None = None,
    num_beams: int = 4,
    max_new_tokens: int = 20,
    scale_override: float | None = None,
) -> ComparisonReport:
    """Encoders: one padded forward pass. Encoder-decoders: generate (beam search), then a
    teacher-forced pass over the output, recomputed, and checked against the gathered steps
    (eager) or verified by the output (sdpa: generate() returns no attention to gather).

    Decoder-only models: the prompt's forward pass, then greedy and beam generation, each checked
    like an encoder-decoder's (eager), or the prompt's pass verified by the output (sdpa).

    tolerance None: the default of the model's dtype (precision.tolerance_for).
    """
    report = _new_report(loaded, tolerance)
    inputs, source = tokenize(loaded, texts)
    report.input_tokens = [int(n) for n in source.mask.sum(dim=1)]
    sdpa = loaded.attn_implementation != EAGER
    if loaded.is_decoder_only and not sdpa:
        report.add(compare_causal(loaded, inputs, source, num_beams, max_new_tokens, scale_override))
        return report
    if not loaded.is_encoder_decoder:
        if sdpa:
            report.add(forward_with_verification(loaded, inputs, source, keep_weights=False, scale_override=scale_override).errors)
        else:
            report.add(forward_errors(forward_with_attention(loaded, inputs, source, scale_override=scale_override)))
        return report
    if sdpa:
        sequences = generate_plain(loaded, inputs, num_beams, max_new_tokens)
        target = target_side(loaded, sequences)
        forced_inputs = teacher_forced_inputs(inputs, sequences)
        report.add(forward_with_verification(
            loaded, forced_inputs, source, target, keep_weights=False, scale_override=scale_override
        ).errors)
        return report
    generated = generate_with_attention(loaded, inputs, source, num_beams=num_beams, max_new_tokens=max_new_tokens)
    forced = forward_with_attention(
        loaded,
        teacher_forced_inputs(inputs, generated.sequences),
        source,
        generated.target,
        scale_override=scale_override,
    )
    report.add({**forward_errors(forced), **generation_errors(generated, forced)})
    return report


def causal_generation_errors(generated: CausalGenerationResult, forced: ForwardResult) -> dict[str, torch.Tensor]:
    """Decoder-only: attention gathered from generate() vs a teacher-forced pass over the final sequence."""
    return {f"{DECODER} (generate)": head_errors(forced.maps[DECODER], generated.maps[DECODER].weights)}


def generate_and_force(loaded: LoadedModel, inputs: dict, num_beams: int, max_new_tokens: int, scale_override=None):
    """Decoder-only: generate, then the recomputed teacher-forced pass over prompt + output.
    Returns (CausalGenerationResult, ForwardResult)."""
    generated = generate_causal_with_attention(loaded, inputs, num_beams=num_beams, max_new_tokens=max_new_tokens)
    forced_inputs = causal_teacher_forced(inputs, generated.sequences)
    forced = forward_with_attention(loaded, forced_inputs, generated.side, scale_override=scale_override)
    return generated, forced


def compare_causal(
    loaded: LoadedModel, inputs: dict, source: Side, num_beams: int, max_new_tokens: int, scale_override=None
) -> dict[str, torch.Tensor]:
    """The prompt's forward pass, then greedy and (num_beams > 1) beam generation, each recomputed:
    kind -> (B, L, H), the worst of each head over the passes."""
    errors = forward_errors(forward_with_attention(loaded, inputs, source, scale_override=scale_override))
    for beams in sorted({1, num_beams}):
        generated, forced = generate_and_force(loaded, inputs, beams, max_new_tokens, scale_override)
        for kind, e in {**forward_errors(forced), **causal_generation_errors(generated, forced)}.items():
            errors[kind] = e if kind not in errors else torch.maximum(errors[kind], e)  # (B, L, H); NaN stays NaN
    return errors


def compare_vision_model(
    loaded: LoadedModel, pixel_values: torch.Tensor, tolerance: float | None = None
) -> ComparisonReport:
    """pixel_values: (B, 3, H, W) already preprocessed."""
    report = _new_report(loaded, tolerance)
    side: Side = vision_side(loaded, pixel_values.shape[0])
    report.input_tokens = [int(n) for n in side.mask.sum(dim=1)]
    pixel_values = pixel_values.to(loaded.dtype)
    if loaded.attn_implementation != EAGER:
        report.add(forward_with_verification(loaded, {"pixel_values": pixel_values}, side, keep_weights=False).errors)
    else:
        report.add(forward_errors(forward_with_attention(loaded, {"pixel_values": pixel_values}, side)))
    return report
