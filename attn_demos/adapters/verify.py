"""Verify recomputed attention through the model's own output, with the model on its fused kernel.

With attn_implementation="sdpa" (or any kernel that returns no weights) the library has no
weights to compare with. Instead, for every attention module, the core recomputes the weights
from what entered the module (q, k, v from its own projections, its mask, scale and bias), forms
weights·v with heads merged, and compares that with what the module itself computed: the input
of its output projection (OUTPUT_PROJECTION), or the module's output where it has none (BERT).

Each module is checked as soon as it has run, inside the forward pass: its weights go to an
optional per-site callback (a reducer) and are dropped unless kept, so the peak extra memory is
about one layer's weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from attn_demos.adapters.extract import Side
from attn_demos.adapters.families import CROSS, DECODER, KINDS, AttentionSite, Family, head_count
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps
from attn_demos.adapters.precision import to_device
from attn_demos.adapters.recompute import _mask_for, capture_attention_inputs
from attn_demos.core.torch_attention import attention, merge_heads, split_heads
from attn_demos.errors import NoAttentionError, UnsupportedModelError

# family name -> attribute of the attention module's output projection (the nn.Linear that
# receives weights·v with heads merged); None: the module returns weights·v itself.
OUTPUT_PROJECTION: dict[str, str | None] = {
    "bert": None,  # BertSelfAttention returns the merged context; BertSelfOutput.dense projects it
    "distilbert": "out_lin",
    "bart": "out_proj",
    "t5": "o",
    "vit": "o_proj",
}
HALF_DTYPES = (torch.float16, torch.bfloat16)
SiteCallback = Callable[[AttentionSite, torch.Tensor], None]  # (site, weights (B, H, Tq, Tk))


@dataclass
class SiteCheck:
    """One module's verification: relative output error per example and head."""

    site: AttentionSite
    errors: torch.Tensor  # (B, H): max |reproduced − module output| / max |module output|, real rows
    scale: float  # max |module output| over real rows of the layer


@dataclass
class Verification:
    """Results of one verified forward pass, in site order, plus the weights if kept."""

    checks: list[SiteCheck] = field(default_factory=list)
    weights: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # kind -> per layer (B, H, Tq, Tk)


_active = threading.local()  # .handler: the per-site handler of the verification running in this thread
_install_lock = threading.Lock()
HOOKED_ATTRIBUTE = "_attn_demos_output_hooked"


def output_projection(family: Family) -> str | None:
    if family.name not in OUTPUT_PROJECTION:
        raise UnsupportedModelError(
            f"family {family.name!r} has no known output projection, so its sdpa output cannot be "
            "checked; use --attn-implementation eager"
        )
    return OUTPUT_PROJECTION[family.name]


@contextmanager
def verify_attention(
    model: torch.nn.Module,
    family: Family,
    sites: list[AttentionSite],
    source_mask: torch.Tensor | None,
    target_mask: torch.Tensor | None = None,
    on_weights: SiteCallback | None = None,
    keep_weights: bool = True,
    scale_override: float | None = None,
):
    """While active, each forward pass of `model` in this thread checks every site as it runs.

    source_mask (B, S), target_mask (B, T): 1 on real tokens. Yields a Verification that fills in.
    """
    projection = output_projection(family)
    _install_output_hooks(sites, projection)
    verification = Verification()
    by_module = {id(s.module): s for s in sites}

    with capture_attention_inputs(sites) as captured:

        def handle(module: torch.nn.Module, context: torch.Tensor) -> None:
            site = by_module.get(id(module))
            if site is None or site.name not in captured:
                return
            query_states, key_value_states = captured.pop(site.name)  # (B, Tq, D), (B, Tk, D)
            masks = (_mask_for(site.kind, source_mask, target_mask), _query_rows(site.kind, source_mask, target_mask))
            weights, check = _check_site(
                model, family, sites, site, query_states, key_value_states, context, masks, scale_override
            )
            verification.checks.append(check)
            if on_weights is not None:
                on_weights(site, weights)
            if keep_weights:
                verification.weights.setdefault(site.kind, []).append(weights)

        outer = getattr(_active, "handler", None)
        _active.handler = handle
        try:
            yield verification
        finally:
            _active.handler = outer


def _query_rows(kind: str, source_mask, target_mask) -> torch.Tensor | None:
    """(B, Tq) bool: which query rows are real for a site of this kind (None: all)."""
    mask = target_mask if kind in (DECODER, CROSS) else source_mask
    return None if mask is None else mask.bool()


def _check_site(model, family, sites, site, query_states, key_value_states, context, masks, scale_override):
    """Recompute one module's weights and compare weights·v with `context` (B, Tq, H·d)."""
    attention_mask, query_is_real = masks  # (B, 1, Tq|1, Tk) or None, (B, Tq) bool or None
    bias = None
    if family.position_bias is not None:
        bias = family.position_bias(model, sites, site.kind, query_states.shape[1], key_value_states.shape[1])
    w_q, w_k, w_v = (getattr(site.module, p) for p in family.projections)
    heads = head_count(site.module, model.config)
    work = working_dtype(query_states.dtype)
    q = split_heads(w_q(query_states).to(work), heads)  # (B, H, Tq, d)
    k = split_heads(w_k(key_value_states).to(work), heads)  # (B, H, Tk, d)
    v = split_heads(w_v(key_value_states).to(work), heads)  # (B, H, Tk, d)
    scale = family.scale if scale_override is None else scale_override
    bias = None if bias is None else bias.to(work)  # (1, H, Tq, Tk)
    output, weights = attention(q, k, v, mask=attention_mask, bias=bias, scale=scale)  # (B,H,Tq,d), (B,H,Tq,Tk)
    errors, magnitude = output_errors(merge_heads(output), context, heads, query_is_real)
    return weights, SiteCheck(site, errors, magnitude)


def output_errors(
    reproduced: torch.Tensor, context: torch.Tensor, heads: int, query_is_real: torch.Tensor | None
) -> tuple[torch.Tensor, float]:
    """Per example and head, max |reproduced − context| / max |context| over real query rows.

    reproduced, context: (B, Tq, H·d); query_is_real: (B, Tq) bool or None (all real).
    Returns errors (B, H) in float64 on the CPU, and max |context|.
    """
    batch, length, width = reproduced.shape
    reference = context.to(reproduced.dtype)  # (B, Tq, H·d)
    diff = (reproduced - reference).abs()  # (B, Tq, H·d)
    magnitude = reference.abs()  # (B, Tq, H·d)
    if query_is_real is not None:
        keep = query_is_real[:, :, None].to(reproduced.device)  # (B, Tq, 1)
        diff = diff * keep
        magnitude = magnitude * keep
    largest = float(magnitude.max())
    per_head = diff.view(batch, length, heads, width // heads).amax(dim=(1, 3))  # (B, H)
    return (per_head.double() / max(largest, torch.finfo(torch.float32).tiny)).cpu(), largest


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision q, k, v are attended in float32: the check then measures the fused kernel's
    rounding, not the core's."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def _install_output_hooks(sites: list[AttentionSite], projection: str | None) -> None:
    """One permanent hook per module: on its output projection's input, or on its own output."""
    with _install_lock:
        for site in sites:
            if getattr(site.module, HOOKED_ATTRIBUTE, False):
                continue
            if projection is None:
                site.module.register_forward_hook(_on_module_output)
            else:
                target = getattr(site.module, projection)
                target.register_forward_pre_hook(_projection_hook_for(site.module))
            setattr(site.module, HOOKED_ATTRIBUTE, True)


def _on_module_output(module, args, output) -> None:
    handler = getattr(_active, "handler", None)
    if handler is not None:
        handler(module, output[0] if isinstance(output, tuple) else output)  # (B, Tq, H·d)


def _projection_hook_for(attention_module: torch.nn.Module):
    def hook(projection, args) -> None:
        handler = getattr(_active, "handler", None)
        if handler is not None:
            handler(attention_module, args[0])  # (B, Tq, H·d): weights·v, heads merged

    return hook


@dataclass
class VerifiedForward:
    """The model's outputs, the recomputed weights as AttentionMaps (if kept), and the checks.

    errors: kind -> (B, L, H) relative output error per example, layer and head (CPU, float64).
    """

    outputs: object
    maps: dict[str, AttentionMaps]
    errors: dict[str, torch.Tensor]


def forward_with_verification(
    loaded: LoadedModel,
    model_inputs: dict,
    source: Side,
    target: Side | None = None,
    on_weights: SiteCallback | None = None,
    keep_weights: bool = True,
    scale_override: float | None = None,
) -> VerifiedForward:
    """One forward pass on the model's own kernel, each attention module checked as it runs."""
    model, family = loaded.model, loaded.family
    device = loaded.device
    source = source.to(device)
    target = None if target is None else target.to(device)
    sites = family.sites(model)
    with torch.no_grad(), verify_attention(
        model,
        family,
        sites,
        source_mask=None if family.vision else source.mask,
        target_mask=None if target is None else target.mask,
        on_weights=on_weights,
        keep_weights=keep_weights,
        scale_override=scale_override,
    ) as verification:
        outputs = model(**to_device(model_inputs, device), return_dict=True)
    missing = {s.name for s in sites} - {c.site.name for c in verification.checks}
    if missing:
        raise NoAttentionError(f"{len(missing)} attention modules ran without being checked (e.g. {min(missing)})")
    errors: dict[str, list[torch.Tensor]] = {}
    for check in sorted(verification.checks, key=lambda c: (KINDS.index(c.site.kind), c.site.layer)):
        errors.setdefault(check.site.kind, []).append(check.errors)
    maps = {}
    for kind, layers in verification.weights.items():
        query, key = _sides_of(kind, source, target)
        maps[kind] = AttentionMaps(
            kind, torch.stack(layers, dim=1), query.query_tokens, key.tokens, query.mask, key.mask
        )  # weights (B, L, H, Tq, Tk)
    return VerifiedForward(outputs, maps, {k: torch.stack(v, dim=1) for k, v in errors.items()})  # (B, L, H)


def _sides_of(kind: str, source: Side, target: Side | None) -> tuple[Side, Side]:
    """(query side, key side) of a kind."""
    if kind == DECODER:
        return target, target
    if kind == CROSS:
        return target, source
    return source, source
