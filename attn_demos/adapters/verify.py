"""Verify recomputed attention through the model's own output, with the model on its fused kernel.

With attn_implementation="sdpa" (or any kernel that returns no weights) the library has no
weights to compare with. Instead, for every attention module, the core recomputes the weights
from what entered the module (q, k, v from its own projections, its mask, scale and bias), forms
weights·v with heads merged, and compares that with what the module itself computed: the input
of its output projection (OUTPUT_PROJECTION), or the module's output where it has none (BERT).

Each module is checked as soon as it has run, inside the forward pass. Weights are materialised
only for the sites a view wants: they go to an optional per-site callback (a reducer) and are
dropped unless kept, so the peak extra memory is about one layer's weights. Every other site is
checked without storing weights: on a GPU with triton by core.fused_check (one kernel: scores,
softmax, ·v and the comparison), elsewhere a few heads at a time in torch. Per-site results stay
on the device until the pass ends (one sync).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from attn_demos.adapters.extract import Side
from attn_demos.adapters.families import CROSS, DECODER, KINDS, AttentionSite, Family
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps
from attn_demos.adapters.precision import to_device
from attn_demos.adapters.recompute import (
    MODULE_PATH_ATTRIBUTE,
    AttentionTerms,
    PassInputs,
    attention_terms,
    capture_attention_inputs,
    captured_inputs,
    recorded_projections,
    terms_weights,
)
from attn_demos.core.fused_check import fused_check, fused_check_available
from attn_demos.errors import NoAttentionError, UnsupportedModelError

# family name -> attribute of the attention module's output projection (the nn.Linear that
# receives weights·v with heads merged); None: the module returns weights·v itself.
OUTPUT_PROJECTION: dict[str, str | None] = {
    "bert": None,  # BertSelfAttention returns the merged context; BertSelfOutput.dense projects it
    "distilbert": "out_lin",
    "bart": "out_proj",
    "t5": "o",
    "vit": "o_proj",
    "deit": "o_proj",
    "gpt2": "c_proj",
    "llama": "o_proj",
    "qwen2": "o_proj",
    "qwen3": "o_proj",
    "mistral": "o_proj",
    "gemma2": "o_proj",
    "phi3": "o_proj",
    "gpt_neox": "dense",
}
HALF_DTYPES = (torch.float16, torch.bfloat16)
HEADS_PER_CHUNK = 1  # heads attended at once inside one layer (peak memory: see check_site)
SiteCallback = Callable[[AttentionSite, torch.Tensor], None]  # (site, weights (B, H, Tq, Tk))


@dataclass
class SiteCheck:
    """One module's verification, on the model's device (no sync): per example and head, over real
    query rows, max |reproduced − module output| and max |module output| in that head's columns."""

    site: AttentionSite
    deviation: torch.Tensor  # (B, H)
    magnitude: torch.Tensor  # (B, H)

    def relative_errors(self) -> torch.Tensor:
        """(B, H): deviation ÷ the layer's largest output (every example and head of this site)."""
        largest = self.magnitude.amax().clamp(min=torch.finfo(torch.float32).tiny)
        return self.deviation.double() / largest.double()


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
    pass_inputs: PassInputs,
    on_weights: SiteCallback | None = None,
    keep_weights: bool = True,
    scale_override: float | None = None,
    wants_weights: Callable[[AttentionSite], bool] | None = None,
):
    """While active, each forward pass of `model` in this thread checks every site as it runs.

    Weights are materialised only for the sites `wants_weights` names (default: every site when
    they are kept or fed to `on_weights`, else none); `on_weights` gets those sites' weights. The
    other sites are checked without storing weights (fused_check on a GPU). Yields a Verification
    that fills in as the modules run.
    """
    projection = output_projection(family)
    _install_output_hooks(sites, projection)
    if wants_weights is None:
        every = keep_weights or on_weights is not None
        wants_weights = lambda site: every  # noqa: E731
    verification = Verification()
    site_of_call = {(s.module_path, s.call): s for s in sites}
    calls_seen: dict[str, int] = {}

    with capture_attention_inputs(sites, recorded_projections(family)) as captured:

        def handle(module: torch.nn.Module, context: torch.Tensor) -> None:
            path = getattr(module, MODULE_PATH_ATTRIBUTE, None)
            call = calls_seen.get(path, 0)
            calls_seen[path] = call + 1
            site = site_of_call.get((path, call))
            inputs = None if site is None else captured_inputs(captured, site)
            if inputs is None:
                return
            captured[path][call] = None  # this call's inputs are no longer needed
            terms = attention_terms(model, family, sites, site, inputs, pass_inputs, scale_override)
            wanted = wants_weights(site)
            weights, check = check_site(site, terms, context, _query_rows(site.kind, pass_inputs), wanted)
            verification.checks.append(check)
            if wanted and on_weights is not None:
                on_weights(site, weights)
            if wanted and keep_weights:
                verification.weights.setdefault(site.kind, []).append(weights)

        outer = getattr(_active, "handler", None)
        _active.handler = handle
        try:
            yield verification
        finally:
            _active.handler = outer


def _query_rows(kind: str, pass_inputs: PassInputs) -> torch.Tensor | None:
    """(B, Tq) bool: which query rows are real for a site of this kind (None: all)."""
    mask = pass_inputs.target_mask if kind in (DECODER, CROSS) else pass_inputs.source_mask
    return None if mask is None else mask.bool()


def check_site(
    site: AttentionSite,
    terms: AttentionTerms,
    context: torch.Tensor,
    query_is_real: torch.Tensor | None,
    want_weights: bool = True,
) -> tuple[torch.Tensor | None, SiteCheck]:
    """The core's weights (B, H, Tq, Tk) for one site (None unless wanted), and weights·v compared
    with `context` (B, Tq, H·d), what the module itself computed.

    Without weights wanted, on a GPU with triton, one fused kernel checks the site and stores
    nothing of size Tq×Tk. Otherwise heads are attended HEADS_PER_CHUNK at a time (half precision
    in float32), each chunk's weights·v compared with its columns of `context` at once; wanted
    weights go into one preallocated layer, so the peak extra memory is that layer plus a few
    heads' temporaries.
    """
    if query_is_real is not None:
        query_is_real = query_is_real.to(terms.q.device)  # (B, Tq)
    if not want_weights and fused_check_available(terms.q.device, terms.q.dtype):
        return None, SiteCheck(site, *_fused(terms, context, query_is_real))
    work = working_dtype(terms.q.dtype)
    batch, heads, q_len, _ = terms.q.shape
    k_len, v_dim = terms.k.shape[2], terms.v.shape[3]
    weights = None
    if want_weights:
        weights = torch.empty(batch, heads, q_len, k_len, dtype=work, device=terms.q.device)  # (B, H, Tq, Tk)
    by_head = context.reshape(batch, q_len, heads, v_dim)  # (B, Tq, H, d_v)
    deviation = torch.empty(batch, heads, dtype=torch.float32, device=terms.q.device)  # (B, H)
    magnitude = torch.empty_like(deviation)  # (B, H)
    for first in range(0, heads, HEADS_PER_CHUNK):
        chunk = slice(first, first + HEADS_PER_CHUNK)
        part = replace(
            terms,
            q=terms.q[:, chunk].to(work),  # (B, h, Tq, d)
            k=terms.k[:, chunk].to(work),  # (B, h, Tk, d)
            v=terms.v[:, chunk].to(work),  # (B, h, Tk, d_v)
            bias=_heads_of(terms.bias, chunk, heads, work),
        )
        chunk_weights = terms_weights(part)  # (B, h, Tq, Tk)
        if weights is not None:
            weights[:, chunk] = chunk_weights
        reproduced = chunk_weights @ part.v  # (B, h, Tq, d_v)
        del chunk_weights
        deviation[:, chunk], magnitude[:, chunk] = head_deviation(
            reproduced, by_head[:, :, chunk].transpose(1, 2), query_is_real
        )
    return weights, SiteCheck(site, deviation, magnitude)


def _fused(terms: AttentionTerms, context: torch.Tensor, query_is_real: torch.Tensor | None):
    """(deviation, magnitude), each (B, H), from the fused kernel."""
    mask = terms.mask
    if mask is not None:
        mask = mask.to(terms.q.device)
    scale = terms.scale if terms.scale is not None else terms.q.shape[-1] ** -0.5
    q, k, v = terms.q, terms.k, terms.v  # (B, H, Tq, d), (B, H, Tk, d), (B, H, Tk, d_v)
    if len({q.dtype, k.dtype, v.dtype}) > 1:  # e.g. a norm computed in float32: attend in float32
        q, k, v = q.float(), k.float(), v.float()
    return fused_check(
        q, k, v, context, scale,
        bias=terms.bias, mask=mask, softcap=terms.softcap, window=terms.window, query_is_real=query_is_real,
    )


def _heads_of(bias: torch.Tensor | None, chunk: slice, heads: int, work: torch.dtype) -> torch.Tensor | None:
    """The chunk's heads of an additive bias broadcastable to (B, H, Tq, Tk)."""
    if bias is None:
        return None
    if bias.dim() == 4 and bias.shape[1] == heads:
        bias = bias[:, chunk]
    return bias.to(work)


def head_deviation(
    reproduced: torch.Tensor, given: torch.Tensor, query_is_real: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example and head, over real query rows: max |reproduced − given| and max |given|.

    reproduced, given: (B, h, Tq, d_v); query_is_real: (B, Tq) bool or None (all real).
    Returns two (B, h) float32 tensors on the same device; a NaN on a real row stays NaN.
    """
    given = given.to(reproduced.dtype)  # (B, h, Tq, d_v)
    difference = (reproduced - given).abs()  # (B, h, Tq, d_v)
    size = given.abs()  # (B, h, Tq, d_v)
    if query_is_real is not None:
        real = query_is_real[:, None, :, None]  # (B, 1, Tq, 1)
        difference = difference.where(real, 0.0)
        size = size.where(real, 0.0)
    return difference.amax(dim=(2, 3)).float(), size.amax(dim=(2, 3)).float()


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
    wants_weights: Callable[[AttentionSite], bool] | None = None,
) -> VerifiedForward:
    """One forward pass on the model's own kernel, each attention module checked as it runs
    (see verify_attention for which sites' weights are materialised)."""
    model, family = loaded.model, loaded.family
    device = loaded.device
    source = source.to(device)
    target = None if target is None else target.to(device)
    sites = family.sites(model)
    model_inputs = to_device(model_inputs, device)
    if family.decoder_only:  # one causal stack over the source tokens
        pass_inputs = PassInputs(target_mask=source.mask, position_ids=model_inputs.get("position_ids"))
        target = source
    else:
        pass_inputs = PassInputs(
            source_mask=None if family.vision else source.mask,
            target_mask=None if target is None else target.mask,
        )
    with torch.no_grad(), verify_attention(
        model,
        family,
        sites,
        pass_inputs,
        on_weights=on_weights,
        keep_weights=keep_weights,
        scale_override=scale_override,
        wants_weights=wants_weights,
    ) as verification:
        outputs = model(**model_inputs, return_dict=True)
    missing = {s.name for s in sites} - {c.site.name for c in verification.checks}
    if missing:
        raise NoAttentionError(f"{len(missing)} attention modules ran without being checked (e.g. {min(missing)})")
    errors: dict[str, list[torch.Tensor]] = {}
    for check in sorted(verification.checks, key=lambda c: (KINDS.index(c.site.kind), c.site.layer, c.site.call)):
        errors.setdefault(check.site.kind, []).append(check.relative_errors())  # (B, H)
    maps = {}
    for kind, layers in verification.weights.items():
        query, key = _sides_of(kind, source, target)
        maps[kind] = AttentionMaps(
            kind, torch.stack(layers, dim=1), query.query_tokens, key.tokens, query.mask, key.mask
        )  # weights (B, L, H, Tq, Tk)
    return VerifiedForward(outputs, maps, {k: torch.stack(v, dim=1).cpu() for k, v in errors.items()})  # (B, L, H)


def _sides_of(kind: str, source: Side, target: Side | None) -> tuple[Side, Side]:
    """(query side, key side) of a kind."""
    if kind == DECODER:
        return target, target
    if kind == CROSS:
        return target, source
    return source, source
