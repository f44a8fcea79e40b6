"""Compare the library's attention with the from-scratch recomputation, kind by kind, layer by
layer, head by head; or, with a fused kernel (sdpa), verify the recomputation by the output."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from attn_demos.adapters.attention_function import AT_FUNCTION, FROM_WEIGHTS, recording
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
from attn_demos.adapters.maps import AttentionMaps, stack_layers
from attn_demos.adapters.precision import EAGER, to_device, tolerance_for
from attn_demos.adapters.verify import forward_with_verification
from attn_demos.errors import UnsupportedModelError

PERCENTILES = (50, 90, 99)
MEASURES = {
    "eager": "max |Δ| between the library's and the recomputed attention weights",
    "sdpa": "max |Δ| between the module's own output and recomputed weights·v, ÷ max |module output| of the layer",
}


LIBRARY, RECOMPUTED = "library", "recomputed"  # the two sides of a comparison
NAN_SIDES = {1: LIBRARY, 2: RECOMPUTED, 3: "both"}  # bit 1: the library's weights are NaN; bit 2: the recomputed


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
    sides: one dict per input, kind -> (L, H) int8 tensor saying which side is NaN where |Δ| is
    NaN (see NAN_SIDES; 0 or a missing kind: not recorded, as in the output check).
    run: device, dtype, attn_implementation, batch size, beams, runtime, versions, dataset…
    """

    model: str
    architecture: str
    tolerance: float
    inputs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    input_tokens: list[int] = field(default_factory=list)  # real input tokens (patches) of each input
    sides: list[dict[str, torch.Tensor]] = field(default_factory=list)
    library_nan_why: str = ""  # why the library's own weights can be NaN in this run ("" unknown)
    max_abs_logit: float = 0.0  # the largest |logit| recomputed (0: not measured)
    depth: str = FROM_WEIGHTS  # how deep the check went: FROM_WEIGHTS or AT_FUNCTION (attention_function.py)
    tolerance_from_rule: bool = False  # the tolerance is precision.tolerance_for's, allowing for max_abs_logit

    def add(self, errors: dict[str, torch.Tensor], sides: dict[str, torch.Tensor] | None = None) -> None:
        """errors: kind -> (B, L, H) for one batch; sides: kind -> (B, L, H) NaN sides, if known.
        Appends B inputs."""
        batch = next(iter(errors.values())).shape[0]
        for b in range(batch):
            self.inputs.append({kind: e[b].double().cpu() for kind, e in errors.items()})
            self.sides.append({kind: s[b].cpu() for kind, s in (sides or {}).items()})

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
        """The worst error over every kind and layer; NaN when any is NaN (or nothing was compared)."""
        errors = [r.max_abs_err for r in self.results]
        return float("nan") if not errors or any(math.isnan(e) for e in errors) else max(errors)

    @property
    def first_nan(self) -> dict | None:
        """Where the first NaN |Δ| is (input, kind, layer, head, in that order) and which side is
        NaN there: "library", "recomputed", "both", or "unknown" (not recorded); None if none."""
        for index, errors in enumerate(self.inputs):
            for kind, e in errors.items():
                nan = torch.isnan(e)  # (L, H)
                if not nan.any():
                    continue
                layer, head = (int(i) for i in nan.nonzero()[0])
                recorded = self.sides[index].get(kind) if index < len(self.sides) else None
                side = NAN_SIDES.get(int(recorded[layer, head]), "unknown") if recorded is not None else "unknown"
                site = {"input": index, "kind": kind, "layer": layer, "head": head, "side": side}
                if side in (LIBRARY, "both"):
                    site["why"] = self.library_nan_why or "the library computed NaN there from the same inputs"
                return site
        return None

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
        """Max error of each input over every kind, layer and head (NaN if any is NaN)."""
        return [float(torch.stack([e.max() for e in i.values()]).max()) for i in self.inputs]

    def head_error_summary(self) -> dict[str, float]:
        """Mean and percentiles of the max error of every (input, kind, layer, head)."""
        values = torch.cat([e.flatten() for i in self.inputs for e in i.values()]).numpy()  # (N·Σ L·H,)
        summary = {"mean": float(values.mean())}
        summary.update({f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES})
        return summary

    def extend(self, other: ComparisonReport) -> None:
        """Append another report's inputs (the same model, later inputs)."""
        self.inputs += other.inputs
        self.sides += other.sides
        self.input_tokens += other.input_tokens
        self.library_nan_why = self.library_nan_why or other.library_nan_why
        self.max_abs_logit = max(self.max_abs_logit, other.max_abs_logit)

    def to_dict(self) -> dict:
        per_input = self.input_errors()
        return {
            "model": self.model,
            "architecture": self.architecture,
            "depth": self.depth,
            "ok": self.ok,
            "tolerance": self.tolerance,
            "max_abs_logit": self.max_abs_logit,
            "measure": MEASURES[self.run.get("attn_implementation", "eager")],
            "max_abs_err": self.max_abs_err if self.inputs else None,  # NaN: null in JSON (to_jsonable)
            "first_nan": self.first_nan,
            "num_inputs": len(self.inputs),
            "num_tokens": sum(self.input_tokens),
            "input_tokens": self.input_tokens,
            **self.run,
            "input_max_abs_err": per_input,
            "worst_input": _worst(per_input),
            "head_max_abs_err": self.head_error_summary() if self.inputs else None,
            "results": [vars(r) for r in self.results],
        }


def _worst(values: list[float]) -> int | None:
    """Index of the largest value, or of the first NaN (a NaN is worse than any number)."""
    if not values:
        return None
    nan = [i for i, v in enumerate(values) if math.isnan(v)]
    return nan[0] if nan else max(range(len(values)), key=values.__getitem__)


def head_errors(library: AttentionMaps, recomputed: torch.Tensor) -> torch.Tensor:
    """Max |Δ| per example, layer and head over real query rows (every key, so padded keys must be
    0 in both): (B, L, H) float64 on the CPU. library.weights and recomputed: (B, L, H, Tq, Tk).

    Computed one layer at a time, in float64 for float64 maps and float32 otherwise (the
    difference of two half-precision numbers is exact in float32).
    """
    if recomputed.shape != library.weights.shape:
        raise ValueError(f"{library.kind}: shapes differ, {tuple(recomputed.shape)} vs {tuple(library.weights.shape)}")
    work = torch.float64 if torch.float64 in (library.weights.dtype, recomputed.dtype) else torch.float32
    rows = library.query_mask.to(recomputed.device)[:, None, :, None]  # (B, 1, Tq, 1)
    per_layer = []
    for layer in range(recomputed.shape[1]):
        diff = (library.weights[:, layer].to(work) - recomputed[:, layer].to(work)).abs()  # (B, H, Tq, Tk)
        diff = torch.where(rows, diff, 0.0)  # padded query rows are not data (the library may leave NaN there)
        per_layer.append(diff.amax(dim=(2, 3)))  # (B, H)
    return torch.stack(per_layer, dim=1).double().cpu()  # (B, L, H)


def nan_sides(library: AttentionMaps, recomputed: torch.Tensor) -> torch.Tensor:
    """Which side is NaN on real query rows, per example, layer and head: (B, L, H) int8 on the CPU,
    bit 1 the library's (library.weights), bit 2 `recomputed`; see NAN_SIDES."""
    rows = library.query_mask.to(recomputed.device)[:, None, :, None]  # (B, 1, Tq, 1)
    per_layer = []
    for layer in range(recomputed.shape[1]):
        library_nan = (torch.isnan(library.weights[:, layer]) & rows).any(dim=-1).any(dim=-1)  # (B, H)
        recomputed_nan = (torch.isnan(recomputed[:, layer]) & rows).any(dim=-1).any(dim=-1)  # (B, H)
        per_layer.append(library_nan.to(torch.int8) + 2 * recomputed_nan.to(torch.int8))
    return torch.stack(per_layer, dim=1).cpu()  # (B, L, H)


@dataclass
class Checks:
    """Errors of one batch, kind -> (B, L, H) max |Δ|, and where one is NaN, kind -> (B, L, H) its
    NaN side (NAN_SIDES); `worst` folds in another pass over the same inputs, head by head."""

    errors: dict[str, torch.Tensor] = field(default_factory=dict)
    sides: dict[str, torch.Tensor] = field(default_factory=dict)
    max_abs_logit: float = 0.0  # the largest |logit| the recomputation met (precision.tolerance_for)
    queries: int = 0  # at the attention function: the query length of the first call

    def compare(self, kind: str, library: AttentionMaps, recomputed: torch.Tensor, both_library: bool = False) -> None:
        """Add `kind`: the library's maps against `recomputed` (B, L, H, Tq, Tk); both_library:
        `recomputed` is the library's too (generate's gathered steps), so either NaN is the library's."""
        errors = head_errors(library, recomputed)  # (B, L, H)
        self.errors[kind] = errors
        if torch.isnan(errors).any():
            sides = nan_sides(library, recomputed)  # (B, L, H)
            self.sides[kind] = (sides > 0).to(torch.int8) if both_library else sides

    def worst(self, other: Checks) -> None:
        self.max_abs_logit = max(self.max_abs_logit, other.max_abs_logit)
        for kind, e in other.errors.items():
            old = self.errors.get(kind)
            self.errors[kind] = e if old is None else torch.maximum(old, e)  # (B, L, H); NaN stays NaN
            if kind in other.sides:
                old_sides = self.sides.get(kind)
                self.sides[kind] = other.sides[kind] if old_sides is None else old_sides | other.sides[kind]


def layer_errors(library: AttentionMaps, recomputed: torch.Tensor, kind: str | None = None) -> list[LayerResult]:
    """Max |Δ| per layer and head over every example: head_errors, worst over the batch."""
    worst = head_errors(library, recomputed).amax(dim=0)  # (L, H)
    return [
        LayerResult(kind or library.kind, layer, float(row.max()), [float(x) for x in row])
        for layer, row in enumerate(worst)
    ]


def forward_checks(result: ForwardResult) -> Checks:
    """Library vs recomputed, for every kind the forward pass produced."""
    checks = Checks(max_abs_logit=result.max_abs_logit)
    for kind, maps in result.maps.items():
        checks.compare(kind, maps, result.recomputed[kind])
    return checks


def forward_errors(result: ForwardResult) -> dict[str, torch.Tensor]:
    """kind -> (B, L, H): library vs recomputed, for every kind the forward pass produced."""
    return forward_checks(result).errors


def generation_checks(generated: GenerationResult | CausalGenerationResult, forced: ForwardResult, kinds) -> Checks:
    """Attention gathered from generate() vs a teacher-forced pass over the final sequence."""
    checks = Checks()
    for kind in kinds:
        checks.compare(f"{kind} (generate)", forced.maps[kind], generated.maps[kind].weights, both_library=True)
    return checks


def _new_report(loaded: LoadedModel, tolerance: float | None) -> ComparisonReport:
    report = ComparisonReport(loaded.source, loaded.architecture, tolerance_for(loaded.dtype) if tolerance is None else tolerance)
    report.tolerance_from_rule = tolerance is None  # widened by _add for the logits' size
    report.depth = loaded.depth
    return report


def _add(report: ComparisonReport, loaded: LoadedModel, checks: Checks) -> None:
    """The checks into the report; a tolerance from the rule then allows for the largest logit met."""
    report.add(checks.errors, checks.sides)
    report.max_abs_logit = max(report.max_abs_logit, checks.max_abs_logit)
    if report.tolerance_from_rule:
        report.tolerance = tolerance_for(loaded.dtype, report.max_abs_logit)


ENCODER_DECODER_BEAMS, ENCODER_DECODER_NEW_TOKENS = 4, 20  # what an encoder-decoder generates unless told


def compare_text_model(
    loaded: LoadedModel,
    texts: list[str],
    tolerance: float | None = None,
    num_beams: int | None = None,
    max_new_tokens: int | None = None,
    scale_override: float | None = None,
) -> ComparisonReport:
    """Encoders: one padded forward pass. Encoder-decoders: generate (beam search; by default
    ENCODER_DECODER_BEAMS beams, ENCODER_DECODER_NEW_TOKENS new tokens), then a teacher-forced pass
    over the output, recomputed, and checked against the gathered steps (eager) or verified by the
    output (sdpa: generate() returns no attention to gather).

    Decoder-only models: one forward pass over the prompt. Only when num_beams or max_new_tokens is
    given (eager): greedy and beam generation too, each checked like an encoder-decoder's.

    tolerance None: the default of the model's dtype (precision.tolerance_for).
    """
    report = _new_report(loaded, tolerance)
    inputs, source = tokenize(loaded, texts)
    report.input_tokens = [int(n) for n in source.mask.sum(dim=1)]
    report.library_nan_why = library_nan_reason(loaded, padded=not bool(source.mask.all()))
    sdpa = loaded.attn_implementation != EAGER
    generate = num_beams is not None or max_new_tokens is not None
    num_beams = ENCODER_DECODER_BEAMS if num_beams is None else num_beams
    max_new_tokens = ENCODER_DECODER_NEW_TOKENS if max_new_tokens is None else max_new_tokens
    if loaded.depth == AT_FUNCTION:
        if loaded.is_encoder_decoder:  # the decoder needs something to read: generate, then a teacher-forced pass
            inputs = teacher_forced_inputs(inputs, generate_plain(loaded, inputs, num_beams, max_new_tokens))
        _add(report, loaded, checks_at_function(loaded, inputs))
        return report
    if loaded.is_decoder_only and generate and not sdpa:
        _add(report, loaded, compare_causal(loaded, inputs, source, num_beams, max_new_tokens, scale_override))
        return report
    if not loaded.is_encoder_decoder:
        if sdpa:
            report.add(forward_with_verification(loaded, inputs, source, keep_weights=False, scale_override=scale_override).errors)
        else:
            _add(report, loaded, forward_checks(forward_with_attention(loaded, inputs, source, scale_override=scale_override)))
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
    checks = forward_checks(forced)
    checks.worst(generation_checks(generated, forced, ("decoder", "cross")))
    _add(report, loaded, checks)
    return report


def checks_at_function(loaded: LoadedModel, model_inputs: dict) -> Checks:
    """One forward pass of a model loaded at the attention-function depth, every call of its
    attention function checked (attention_function.py): kind -> (B, L, H), layer l the kind's l-th
    call. A model none of whose modules called the function is refused with one line."""
    _, record = forward_at_function(loaded, model_inputs)
    errors, sides, logit_size = record.errors()
    return Checks(errors, sides, logit_size if loaded.attn_implementation == EAGER else 0.0, record.calls[0].queries)


def forward_at_function(loaded: LoadedModel, model_inputs: dict, on_weights=None, by_output: bool = False):
    """(the model's outputs, the Recording) of one forward pass at the attention-function depth;
    on_weights and by_output as attention_function.recording's. One line if no module called the function."""
    model_inputs = to_device(model_inputs, loaded.device)
    with torch.no_grad(), recording(
        loaded.model, loaded.attn_implementation, loaded.is_decoder_only, loaded.family.vision, on_weights, by_output
    ) as record:
        outputs = loaded.model(**model_inputs, return_dict=True)
    if not record.calls:
        not_from_weights = loaded.weights_refusal.split(" (supported:")[0]  # the family table's list left out
        raise UnsupportedModelError(
            f"{not_from_weights}, and its attention modules do not call transformers' attention function "
            "(AttentionInterface), so it cannot be checked at that depth either: no numbers are shown"
        )
    return outputs, record


def weights_at_function(loaded: LoadedModel, model_inputs: dict):
    """(outputs, library, recomputed, Recording) of one pass at the attention-function depth:
    library and recomputed kind -> (B, L, H, Tq, Tk), each call's weights as the library's eager
    function returned them (empty under sdpa) and as the core recomputed them from its q, k, v."""
    library: dict[str, list[torch.Tensor]] = {}
    recomputed: dict[str, list[torch.Tensor]] = {}

    def keep(kind: str, layer: int, library_weights, recomputed_weights) -> None:  # (B, H, Tq, Tk) each
        recomputed.setdefault(kind, []).append(recomputed_weights)
        if library_weights is not None:
            library.setdefault(kind, []).append(library_weights)

    outputs, record = forward_at_function(loaded, model_inputs, on_weights=keep)
    record.errors()  # one line if the calls of a kind differ in (batch, heads)
    return (
        outputs,
        {kind: _stacked(layers, kind) for kind, layers in library.items()},
        {kind: _stacked(layers, kind) for kind, layers in recomputed.items()},
        record,
    )


def _stacked(layers: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Calls (B, H, Tq, Tk) -> (B, L, H, Tq, Tk); one line when they differ in shape (one grid cannot hold them)."""
    shapes = sorted({tuple(layer.shape) for layer in layers})
    if len(shapes) > 1:
        raise UnsupportedModelError(f"its {kind} attention calls differ in shape {shapes}, which one (layer, head) grid cannot hold")
    return stack_layers(layers, kind)


def library_nan_reason(loaded: LoadedModel, padded: bool) -> str:
    """Why the library's own eager weights can be NaN in this run, as far as known ("" otherwise)."""
    softmax = loaded.family.softmax_dtype
    if loaded.dtype == torch.float64 and softmax == torch.float32 and padded:
        return (
            "the library's own weights are NaN: it runs softmax in float32 for this float64 model, so a padded "
            "query row, masked with float64's minimum (−inf in float32), gives NaN, and that NaN reaches real rows "
            "through the next layer's keys and values; the recomputation masks those keys and stays finite"
        )
    return ""


def generate_and_force(loaded: LoadedModel, inputs: dict, num_beams: int, max_new_tokens: int, scale_override=None):
    """Decoder-only: generate, then the recomputed teacher-forced pass over prompt + output (at the
    attention-function depth, the core's weights from the q, k, v that pass gave the function).
    Returns (CausalGenerationResult, ForwardResult)."""
    generated = generate_causal_with_attention(loaded, inputs, num_beams=num_beams, max_new_tokens=max_new_tokens)
    forced_inputs = causal_teacher_forced(inputs, generated.sequences)
    if loaded.depth == AT_FUNCTION:
        outputs, library, recomputed, record = weights_at_function(loaded, forced_inputs)
        side = generated.side
        maps = {DECODER: AttentionMaps(DECODER, library[DECODER], side.query_tokens, side.tokens, side.query_mask, side.mask)}
        return generated, ForwardResult(outputs, maps, recomputed, record.errors()[2])
    forced = forward_with_attention(loaded, forced_inputs, generated.side, scale_override=scale_override)
    return generated, forced


def compare_causal(
    loaded: LoadedModel, inputs: dict, source: Side, num_beams: int, max_new_tokens: int, scale_override=None
) -> Checks:
    """The prompt's forward pass, then greedy and (num_beams > 1) beam generation, each recomputed:
    the worst of each head over the passes."""
    checks = forward_checks(forward_with_attention(loaded, inputs, source, scale_override=scale_override))
    for beams in sorted({1, num_beams}):
        generated, forced = generate_and_force(loaded, inputs, beams, max_new_tokens, scale_override)
        checks.worst(forward_checks(forced))
        checks.worst(generation_checks(generated, forced, (DECODER,)))
    return checks


def compare_vision_model(
    loaded: LoadedModel, pixel_values: torch.Tensor, tolerance: float | None = None
) -> ComparisonReport:
    """pixel_values: (B, 3, H, W) already preprocessed."""
    report = _new_report(loaded, tolerance)
    pixel_values = pixel_values.to(loaded.dtype)
    if loaded.depth == AT_FUNCTION:
        checks = checks_at_function(loaded, {"pixel_values": pixel_values})
        report.input_tokens = [checks.queries] * pixel_values.shape[0]  # the vision sequence the first layer attends
        _add(report, loaded, checks)
        return report
    side: Side = vision_side(loaded, pixel_values.shape[0])
    report.input_tokens = [int(n) for n in side.mask.sum(dim=1)]
    if loaded.attn_implementation != EAGER:
        report.add(forward_with_verification(loaded, {"pixel_values": pixel_values}, side, keep_weights=False).errors)
    else:
        _add(report, loaded, forward_checks(forward_with_attention(loaded, {"pixel_values": pixel_values}, side)))
    return report
