"""The "at the attention function" depth: check the attention step of any model whose attention
modules call transformers' attention-function registry (`AttentionInterface`).

transformers 5 modules compute q, k and v themselves (projections, norms, rotary …) and hand them,
with the mask, scaling, sliding window, soft-cap and attention sinks, to the function registered
under the model's attn_implementation. A model loaded with CHECK_IMPLEMENTATION calls
`checked_attention` there: it runs the library's own function (the modeling file's
eager_attention_forward, or sdpa) and returns its result unchanged; while a `recording` is active it
also recomputes the weights, and weights·v, with the project's core from the exact q, k, v, mask
(which holds any sliding window), scaling, soft-cap and sinks the module passed, and records the comparison per call.

This proves the attention step only: not the projections, norms or rotary embedding that made
q, k and v (the "from weights" depth, recompute.py, re-derives those from the module's weights).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from attn_demos.adapters.families import CROSS, DECODER, ENCODER, VISION
from attn_demos.adapters.precision import EAGER
from attn_demos.core.heads import repeat_kv_heads
from attn_demos.core.torch_attention import attention_scores, fast_attention
from attn_demos.errors import UnsupportedModelError

CHECK_IMPLEMENTATION = "attn_demos_check"  # the name the check is registered under in transformers
FROM_WEIGHTS, AT_FUNCTION = "from weights", "at the attention function"  # the two depths
HALF_DTYPES = (torch.float16, torch.bfloat16)
CROSS_TAGS = ("encoder_attn", "encdecattention", "crossattention", "cross_attn", "cross_attention")

_active = threading.local()  # .recording: the Recording of the check running in this thread, if any
_register_lock = threading.Lock()


def register() -> None:
    """Register `checked_attention` and its mask (transformers' eager mask: additive, dtype's minimum
    where masked) under CHECK_IMPLEMENTATION, once per process; public transformers API."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    with _register_lock:
        AttentionInterface.register(CHECK_IMPLEMENTATION, checked_attention)
        AttentionMaskInterface.register(CHECK_IMPLEMENTATION, eager_mask)


def library_attention(module: torch.nn.Module, implementation: str) -> Callable:
    """The function transformers itself would call for `module`: its modeling file's
    eager_attention_forward (what the module passes as the default), or the registered sdpa."""
    if implementation != EAGER:
        from transformers import AttentionInterface

        return AttentionInterface()[implementation]
    modeling = importlib.import_module(type(module).__module__)
    eager = getattr(modeling, "eager_attention_forward", None)
    if eager is None:
        raise UnsupportedModelError(
            f"{type(module).__name__} has no eager_attention_forward in {modeling.__name__}, so the library's own "
            "attention cannot be run beside the check"
        )
    return eager


def checked_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The registered attention function: the library's own result, unchanged; checked when a
    recording is active in this thread. query (B, H, Tq, d), key and value (B, H_kv, Tk, d)."""
    recording = getattr(_active, "recording", None)
    implementation = EAGER if recording is None else recording.implementation
    function = library_attention(module, implementation)
    output, weights = function(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    if recording is not None:
        with torch.no_grad():
            recording.check(module, query, key, value, attention_mask, scaling, kwargs, output, weights)
    return output, weights


@dataclass
class CallCheck:
    """One call of the attention function, checked: per example and head, over query rows that
    may attend some key, max |Δ| (eager: the weights; sdpa: the outputs), and max |library output|."""

    kind: str
    path: str
    deviation: torch.Tensor  # (B, H) float64
    magnitude: torch.Tensor  # (B, H) float64
    sides: torch.Tensor  # (B, H) int8: bit 1 the library's side is NaN, bit 2 the recomputed (compare.NAN_SIDES)
    logit_size: float  # max |q·kᵀ·scale + mask| over allowed keys
    queries: int  # Tq


@dataclass
class Recording:
    """The checks of every attention-function call in the passes run while it is active."""

    implementation: str  # the library function run beside the check: "eager" or "sdpa"
    paths: dict[int, str]  # id(module) -> its path in the model
    decoder_only: bool
    vision: bool
    calls: list[CallCheck] = field(default_factory=list)
    # (kind, layer, library weights or None (sdpa), recomputed weights), each (B, H, Tq, Tk): what a view wants
    on_weights: Callable | None = None
    by_output: bool = False  # compare outputs (weights·v) even beside eager, as sdpa always does

    def __post_init__(self):
        self.by_output = self.by_output or self.implementation != EAGER

    def check(self, module, query, key, value, attention_mask, scaling, kwargs, output, weights) -> None:
        path = self.paths.get(id(module), type(module).__name__)
        if module.training:
            raise UnsupportedModelError("the attention check needs the model in eval mode (no dropout)")
        recomputed, recomputed_output, allowed, logit_size = recompute(query, key, value, attention_mask, scaling, kwargs, module)
        rows = allowed.any(dim=-1)  # (B|1, H|1, Tq): rows that may attend some key
        sink_output = None  # (B, H) relative output deviation where the library's weights leave the sink out
        if not self.by_output:
            library = weights  # (B, H, Tq, Tk)
            mine = recomputed
            if _sinks(kwargs, module) is not None and _rows_sum_to_one(weights, rows):
                # GraniteSWA: its eager weights are renormalised without the sink, its output carries it. The
                # weights are checked against the core's without the sink, the sink through the output.
                mine = _without_sink(recomputed)
                sink_output = _relative_deviation(output.transpose(1, 2), recomputed_output, rows)
        else:
            library = output.transpose(1, 2)  # (B, H, Tq, d_v)
            mine = recomputed_output
        rows = rows.expand(library.shape[:3])[..., None]  # (B, H, Tq, 1)
        work = torch.float64 if torch.float64 in (library.dtype, mine.dtype) else torch.float32
        difference = torch.where(rows, (library.to(work) - mine.to(work)).abs(), 0.0)  # (B, H, Tq, X)
        size = torch.where(rows, library.to(work).abs().nan_to_num(0.0), 0.0)  # (B, H, Tq, X)
        library_nan = (torch.isnan(library) & rows).flatten(2).any(dim=-1)  # (B, H)
        mine_nan = (torch.isnan(mine) & rows).flatten(2).any(dim=-1)  # (B, H)
        deviation = difference.flatten(2).amax(dim=-1).double().cpu()  # (B, H); amax keeps a NaN
        if sink_output is not None:
            deviation = torch.maximum(deviation, sink_output)  # (B, H)
        kind = self.kind_of(path, module)
        if self.on_weights is not None:  # layer l of a kind is its l-th call, as in errors()
            layer = sum(call.kind == kind for call in self.calls)
            shown = recomputed if self.by_output else mine  # the core's weights in the library's convention
            self.on_weights(kind, layer, weights if self.implementation == EAGER else None, shown)
        self.calls.append(CallCheck(
            kind,
            path,
            deviation,
            size.flatten(2).amax(dim=-1).double().cpu(),
            (library_nan.to(torch.int8) + 2 * mine_nan.to(torch.int8)).cpu(),
            logit_size,
            query.shape[2],
        ))

    def kind_of(self, path: str, module) -> str:
        lowered = path.lower()
        if any(tag in lowered for tag in CROSS_TAGS):
            return CROSS
        if "decoder" in lowered or self.decoder_only:
            return DECODER
        return VISION if self.vision else ENCODER

    def errors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
        """(kind -> (B, L, H) errors, kind -> (B, L, H) NaN sides, the largest |logit|); layer l of a
        kind is its l-th call in the pass. Eager: max |Δ| of the weights; sdpa: the output's max |Δ|
        ÷ the largest |output| of that call (as verify.relative_errors)."""
        per_kind: dict[str, list[CallCheck]] = {}
        for call in self.calls:
            per_kind.setdefault(call.kind, []).append(call)
        errors, sides = {}, {}
        for kind, calls in per_kind.items():
            shapes = {tuple(c.deviation.shape) for c in calls}
            if len(shapes) > 1:
                raise UnsupportedModelError(
                    f"its {kind} attention calls differ in (batch, heads) {sorted(shapes)}, which one report's "
                    "(layer, head) grid cannot hold"
                )
            deviation = torch.stack([c.deviation for c in calls], dim=1)  # (B, L, H)
            if self.by_output:
                largest = torch.stack([c.magnitude.amax() for c in calls]).clamp(min=torch.finfo(torch.float32).tiny)  # (L,)
                deviation = deviation / largest[None, :, None]
            errors[kind] = deviation
            sides[kind] = torch.stack([c.sides for c in calls], dim=1)  # (B, L, H)
        logit_size = max((c.logit_size for c in self.calls), default=0.0)
        return errors, sides, logit_size


def recompute(query, key, value, attention_mask, scaling, kwargs, module):
    """The core's weights (B, H, Tq, Tk) and weights·v (B, H, Tq, d_v) from what the module passed,
    the boolean mask of allowed keys (broadcastable to (B, H, Tq, Tk)) and the largest |logit|.

    The mask is transformers' eager mask (additive: 0, or the dtype's minimum where masked), added
    to the logits as the library does, after T5's position_bias where one is passed. The mask holds
    the sliding window: the kwarg sliding_window is for kernels that take no mask, and the library's
    eager functions ignore it, so the check does too. The soft-cap (softcap) and attention sinks (s_aux, or the module's `sinks`: one logit per head that takes a share of
    the softmax and attends nothing) are applied by the core."""
    work = torch.float32 if query.dtype in HALF_DTYPES else query.dtype  # half precision attended in float32
    heads, q_len, k_len = query.shape[1], query.shape[2], key.shape[2]
    q = query.to(work)  # (B, H, Tq, d)
    k = repeat_kv_heads(key.to(work), heads)  # (B, H, Tk, d)
    v = repeat_kv_heads(value.to(work), heads)  # (B, H, Tk, d_v)
    bias, mask = None, None
    if attention_mask is not None:
        given = attention_mask[:, :, :, :k_len]  # (B|1, 1|H, Tq, Tk), as the eager functions slice it
        if given.dtype == torch.bool:
            mask = given
        else:
            bias = given.to(work)
    allowed = torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=q.device) if mask is None else mask
    if bias is not None:
        allowed = allowed & (bias > torch.finfo(attention_mask.dtype).min / 2)  # (B, 1|H, Tq, Tk)
    position_bias = kwargs.get("position_bias")
    if isinstance(position_bias, torch.Tensor):  # T5's relative position bias (B|1, H, Tq, Tk), added before the mask
        position_bias = position_bias[:, :, :, :k_len].to(work)
        bias = position_bias if bias is None else position_bias + bias
    softcap = kwargs.get("softcap")
    logits = attention_scores(q, k, scaling)  # (B, H, Tq, Tk)
    if bias is not None:
        logits = logits + bias
    logit_size = float(logits.masked_fill(~allowed, 0.0).abs().amax()) if logits.numel() else 0.0
    del logits
    sinks = _sinks(kwargs, module)
    if sinks is None:
        _, weights = fast_attention(q, k, None, mask=mask, bias=bias, scale=scaling, softcap=softcap)  # (B, H, Tq, Tk)
    else:
        if softcap is not None:
            raise UnsupportedModelError("attention sinks with a logit soft-cap are not supported by the check")
        weights = _with_sinks(q, k, mask, bias, scaling, sinks.to(work))  # (B, H, Tq, Tk)
    recomputed_output = weights @ v  # (B, H, Tq, d_v)
    return weights, recomputed_output, allowed, logit_size


def _rows_sum_to_one(weights: torch.Tensor, rows: torch.Tensor) -> bool:
    """Whether every attending row of the library's weights (B, H, Tq, Tk) sums to 1 (to within
    float32 rounding): a library that leaves the sink's share out of the weights it returns."""
    sums = weights.double().sum(dim=-1)  # (B, H, Tq)
    return bool(((sums - 1).abs() <= 1e-5)[rows.expand(sums.shape)].all())


def _without_sink(weights: torch.Tensor) -> torch.Tensor:
    """(B, H, Tq, Tk) weights that gave the sink a share, renormalised over the keys alone."""
    return (weights / weights.sum(dim=-1, keepdim=True)).nan_to_num(0.0)


def _relative_deviation(library: torch.Tensor, mine: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(B, H) max |library − mine| over attending rows ÷ the largest |library| of the call; outputs (B, H, Tq, d_v)."""
    rows = rows.expand(library.shape[:3])[..., None]  # (B, H, Tq, 1)
    work = torch.float64 if torch.float64 in (library.dtype, mine.dtype) else torch.float32
    difference = torch.where(rows, (library.to(work) - mine.to(work)).abs(), 0.0)  # (B, H, Tq, d_v)
    largest = torch.where(rows, library.to(work).abs(), 0.0).amax().clamp(min=torch.finfo(torch.float32).tiny)
    return (difference.flatten(2).amax(dim=-1) / largest).double().cpu()  # (B, H)


def _sinks(kwargs: dict, module) -> torch.Tensor | None:
    """(H,) sink logits the module passes (s_aux) or keeps (`sinks`), or None."""
    sinks = kwargs.get("s_aux")
    if sinks is None:
        sinks = getattr(module, "sinks", None)
    return sinks if isinstance(sinks, torch.Tensor) else None


def _with_sinks(q, k, mask, bias, scale, sinks):
    """Attention with one sink per head: an extra key whose logit is the sink (a zero key, so q·k is
    0, plus the sink as its bias) joins the softmax, and its column is dropped after."""
    batch, heads, q_len, d = q.shape
    k_len = k.shape[2]
    k_plus = torch.cat([k, k.new_zeros(batch, heads, 1, d)], dim=2)  # (B, H, Tk+1, d)
    bias_keys = torch.zeros(1, 1, 1, k_len, dtype=q.dtype, device=q.device) if bias is None else bias
    bias_keys = bias_keys.expand(batch, heads, q_len, k_len)  # (B, H, Tq, Tk)
    sink_column = sinks.reshape(1, heads, 1, 1).expand(batch, heads, q_len, 1)  # (B, H, Tq, 1)
    bias_plus = torch.cat([bias_keys, sink_column], dim=-1)  # (B, H, Tq, Tk+1)
    mask_plus = None
    if mask is not None:
        mask = mask.expand(batch, heads, q_len, k_len)  # (B, H, Tq, Tk)
        mask_plus = torch.cat([mask, mask.new_ones(batch, heads, q_len, 1)], dim=-1)  # (B, H, Tq, Tk+1)
    _, weights = fast_attention(q, k_plus, None, mask=mask_plus, bias=bias_plus, scale=scale)  # (B, H, Tq, Tk+1)
    return weights[..., :k_len]  # (B, H, Tq, Tk)


@contextmanager
def recording(
    model: torch.nn.Module,
    implementation: str,
    decoder_only: bool,
    vision: bool,
    on_weights: Callable | None = None,
    by_output: bool = False,
):
    """While active, every attention-function call of passes run by this thread is checked; yields
    the Recording. The model must have been loaded with CHECK_IMPLEMENTATION. on_weights(kind, layer,
    library, recomputed) receives each call's weights (B, H, Tq, Tk) (library None under sdpa);
    by_output: check outputs rather than weights beside eager too."""
    paths = {id(module): name for name, module in model.named_modules()}
    current = Recording(implementation, paths, decoder_only, vision, on_weights=on_weights, by_output=by_output)
    outer = getattr(_active, "recording", None)
    _active.recording = current
    try:
        yield current
    finally:
        _active.recording = outer
