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

import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from attn_demos.adapters.extract import Side
from attn_demos.adapters.families import CROSS, DECODER, KINDS, AttentionSite, Family
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps, stack_layers
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
from attn_demos.core.aggregate import FUSIONS  # a fusion gives (B, Tq, Tk)
from attn_demos.core.fused_check import KernelLimitError, fused_check, fused_check_available
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
    "gemma": "o_proj",
    "gemma3": "o_proj",
    "granite": "o_proj",
    "olmo": "o_proj",
    "olmo2": "o_proj",
    "olmo3": "o_proj",
    "qwen3_moe": "o_proj",
    "partial": "o_proj",
    "phi": "dense",
    "smollm3": "o_proj",
    "gpt_neo": "out_proj",
    "openai-gpt": "c_proj",
    "xglm": "out_proj",
    "xlm": "out_lin",
}
HALF_DTYPES = (torch.float16, torch.bfloat16)
CHUNK_BYTES = 2 * 2**20  # heads attended at once: as many as fit this much of scores, at least one
HEADS_PER_CHUNK: int | None = None  # set to force a number of heads per chunk (the GPU benchmark does)
HEADS = "heads"  # a site's weights wanted as they are, (B, H, Tq, Tk); else a fusion over heads
SiteCallback = Callable[[AttentionSite, torch.Tensor], None]  # (site, weights (B, H, Tq, Tk) or fused (B, Tq, Tk))
# site -> what of its weights a view wants: HEADS (or True), a fusion, or None (or False): nothing
WantedForm = Callable[[AttentionSite], str | bool | None]


@dataclass
class SiteCheck:
    """One module's verification, on the model's device (no sync): per example and head, over real
    query rows, max |reproduced − module output| and max |module output| in that head's columns."""

    site: AttentionSite
    deviation: torch.Tensor  # (B, H)
    magnitude: torch.Tensor  # (B, H)


def relative_errors(checks: list[SiteCheck]) -> torch.Tensor:
    """(B, L, H) on the CPU, float64: each site's deviation ÷ its layer's largest output (every
    example and head of that site); one copy from the device for all sites."""
    deviation = torch.stack([c.deviation for c in checks]).cpu().double()  # (L, B, H)
    magnitude = torch.stack([c.magnitude for c in checks]).cpu().double()  # (L, B, H)
    largest = magnitude.amax(dim=(1, 2)).clamp(min=torch.finfo(torch.float32).tiny)  # (L,)
    return (deviation / largest[:, None, None]).transpose(0, 1)  # (B, L, H)


@dataclass
class Verification:
    """Results of one verified forward pass, in site order, plus the weights if kept."""

    checks: list[SiteCheck] = field(default_factory=list)
    weights: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # kind -> per layer (B, H, Tq, Tk)


log = logging.getLogger(__name__)
try:
    from triton.runtime.errors import OutOfResources as _OutOfResources

    OUT_OF_RESOURCES: tuple[type[Exception], ...] = (_OutOfResources,)
except ImportError:
    OUT_OF_RESOURCES = ()

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
    wants_weights: WantedForm | None = None,
):
    """While active, each forward pass of `model` in this thread checks every site as it runs.

    Weights are materialised only in the form `wants_weights` names per site (default: every
    site's heads when they are kept or fed to `on_weights`, else none): all heads, or one map fused
    over heads, built a few heads at a time (CHUNK_BYTES), so a long input's heads never exist together.
    `on_weights` gets what was built; only whole heads are kept. The other sites are checked
    without storing weights (fused_check on a GPU). Yields a Verification that fills in as the
    modules run.
    """
    projection = output_projection(family)
    _install_output_hooks(sites, projection)
    if wants_weights is None:
        every = keep_weights or on_weights is not None
        wants_weights = lambda site: every  # noqa: E731
    verification = Verification()
    site_of_call = {(s.module_path, s.call): s for s in sites}
    calls_seen: dict[str, int] = {}
    zeroed = ZeroedMaxima(len(sites))

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
            form = wanted_form(wants_weights(site))
            weights, check = check_site(site, terms, context, _query_rows(site.kind, pass_inputs), form, zeroed)
            verification.checks.append(check)
            if form is not None and on_weights is not None:
                on_weights(site, weights)
            if form == HEADS and keep_weights:
                verification.weights.setdefault(site.kind, []).append(weights)

        outer = getattr(_active, "handler", None)
        _active.handler = handle
        try:
            yield verification
        finally:
            _active.handler = outer


def wanted_form(wanted: str | bool | None) -> str | None:
    """HEADS, a fusion or None, from what a WantedForm returned."""
    if wanted is True:
        return HEADS
    if not wanted:
        return None
    if wanted != HEADS and wanted not in FUSIONS:
        raise ValueError(f"unknown form of weights {wanted!r}; choose {HEADS!r} or one of {', '.join(FUSIONS)}")
    return wanted


def _query_rows(kind: str, pass_inputs: PassInputs) -> torch.Tensor | None:
    """(B, Tq) bool: which query rows are real for a site of this kind (None: all)."""
    mask = pass_inputs.target_mask if kind in (DECODER, CROSS) else pass_inputs.source_mask
    return None if mask is None else mask.bool()


def check_site(
    site: AttentionSite,
    terms: AttentionTerms,
    context: torch.Tensor,
    query_is_real: torch.Tensor | None,
    form: str | bool | None = HEADS,
    zeroed: ZeroedMaxima | None = None,
) -> tuple[torch.Tensor | None, SiteCheck]:
    """The core's weights for one site in the wanted form (HEADS: (B, H, Tq, Tk); a fusion:
    (B, Tq, Tk); None: nothing), and weights·v compared with `context` (B, Tq, H·d), what the
    module itself computed.

    With nothing wanted, on a GPU with triton, one fused kernel checks the site and stores
    nothing of size Tq×Tk (its results go into a buffer of `zeroed` where one is left). Otherwise
    heads are attended as many at a time as CHUNK_BYTES of scores
    hold (at least one; half precision in float32); whole heads go into one preallocated layer, a
    fusion into one running map, so the peak extra memory is that layer (or map) plus a few heads'
    temporaries. Every head's weights·v is then compared with `context` in one step (a few
    element-wise passes per site rather than per chunk: on a CPU each costs more than its work).
    """
    form = wanted_form(form)
    if query_is_real is not None:
        query_is_real = query_is_real.to(terms.q.device)  # (B, Tq)
    if form is None and fused_check_available(terms.q.device, terms.q.dtype):
        batch, heads = terms.q.shape[:2]
        maxima = zeroed.take(batch, heads, terms.q.device) if zeroed is not None else None  # (2, B, H) or None
        checked = _fused(terms, context, query_is_real, maxima)
        if checked is not None:
            return None, SiteCheck(site, *checked)
    work = working_dtype(terms.q.dtype)
    batch, heads, q_len, _ = terms.q.shape
    k_len, v_dim = terms.k.shape[2], terms.v.shape[3]
    one_head = batch * q_len * k_len * torch.finfo(work).bits // 8  # bytes of one head's scores
    per_chunk = HEADS_PER_CHUNK or max(1, CHUNK_BYTES // one_head)  # short inputs: fewer, larger steps
    one_step = per_chunk >= heads  # every head in one step: its results are used as they come
    weights = None  # (B, H, Tq, Tk) for HEADS, (B, Tq, Tk) for a fusion
    reproduced = None  # (B, H, Tq, d_v): weights·v
    if not one_step:
        reproduced = torch.empty(batch, heads, q_len, v_dim, dtype=work, device=terms.q.device)  # (B, H, Tq, d_v)
        if form == HEADS:
            weights = torch.empty(batch, heads, q_len, k_len, dtype=work, device=terms.q.device)  # (B, H, Tq, Tk)
    for first in range(0, heads, per_chunk):
        chunk = slice(first, first + per_chunk)
        part = terms  # every head, already in the working dtype
        if not (one_step and work == terms.q.dtype == terms.k.dtype == terms.v.dtype):  # q's may differ (qk norm)
            part = replace(
                terms,
                q=terms.q[:, chunk].to(work),  # (B, h, Tq, d)
                k=terms.k[:, chunk].to(work),  # (B, h, Tk, d)
                v=terms.v[:, chunk].to(work),  # (B, h, Tk, d_v)
                bias=_heads_of(terms.bias, chunk, heads, work),
            )
        chunk_weights = terms_weights(part)  # (B, h, Tq, Tk)
        if form == HEADS and one_step:
            weights = chunk_weights  # (B, H, Tq, Tk)
        elif form == HEADS:
            weights[:, chunk] = chunk_weights
        elif form is not None:
            weights = _fold(weights, chunk_weights, form)  # (B, Tq, Tk)
        if one_step:
            reproduced = chunk_weights @ part.v  # (B, H, Tq, d_v)
        else:
            reproduced[:, chunk] = chunk_weights @ part.v  # (B, h, Tq, d_v)
        del chunk_weights
    if form == "mean":
        weights /= heads
    given = context.reshape(batch, q_len, heads, v_dim).transpose(1, 2)  # (B, H, Tq, d_v)
    return weights, SiteCheck(site, *head_deviation(reproduced, given, query_is_real))


def _fold(fused: torch.Tensor | None, chunk_weights: torch.Tensor, how: str) -> torch.Tensor:
    """A running fusion over heads: `fused` (B, Tq, Tk) or None, folded with one chunk's weights
    (B, h, Tq, Tk): sums for "mean" (divided by H at the end), else running max or min."""
    if how == "mean":
        part = chunk_weights.sum(dim=1)  # (B, Tq, Tk)
        return part if fused is None else fused.add_(part)
    part = chunk_weights.amax(dim=1) if how == "max" else chunk_weights.amin(dim=1)  # (B, Tq, Tk)
    if fused is None:
        return part
    return torch.maximum(fused, part, out=fused) if how == "max" else torch.minimum(fused, part, out=fused)


def _fused(terms: AttentionTerms, context: torch.Tensor, query_is_real: torch.Tensor | None, maxima: torch.Tensor | None):
    """(deviation, magnitude), each (B, H), from the fused kernel; None where it cannot run
    (operands beyond 32-bit offsets, or blocks the GPU cannot hold): the torch path then checks."""
    mask = terms.mask  # bool, broadcastable to (B, H, Tq, Tk), or None
    if mask is not None:
        mask = mask.to(terms.q.device)
    scale = terms.scale if terms.scale is not None else terms.q.shape[-1] ** -0.5
    q, k, v = terms.q, terms.k, terms.v  # (B, H, Tq, d), (B, H, Tk, d), (B, H, Tk, d_v)
    if len({q.dtype, k.dtype, v.dtype}) > 1:  # e.g. a norm computed in float32: attend in float32
        q, k, v = q.float(), k.float(), v.float()
    try:
        return fused_check(
            q, k, v, context, scale,
            bias=terms.bias, mask=mask, softcap=terms.softcap, window=terms.window, query_is_real=query_is_real,
            maxima=maxima,
        )
    except (KernelLimitError, *OUT_OF_RESOURCES) as error:
        log.warning("fused check kernel refused (%s); checking in torch", error)
        return None


ALIGNMENT = 16  # bytes: triton specialises a pointer argument on whether its address is a multiple of this


class ZeroedMaxima:
    """Zeroed (2, B, H) int32 result buffers of the fused check for one verification's sites,
    filled with zeros at once on first use: one fill kernel for every layer instead of one each
    (each launch costs the host µs, and a bfloat16 pass on a GPU can be bound by the host). Each
    buffer starts on an ALIGNMENT boundary, as a buffer of its own would: triton specialises a
    pointer on it, so a misaligned one would compile the kernel a second time."""

    def __init__(self, sites: int):
        self.sites = sites
        self.block: torch.Tensor | None = None  # (sites, padded 2·B·H)
        self.shape: tuple[int, int, int] | None = None  # (2, B, H) of every buffer
        self.taken = 0

    def take(self, batch: int, heads: int, device: torch.device) -> torch.Tensor | None:
        """The next unused buffer, (2, B, H); None once all are taken or for another shape or device."""
        if self.block is None:
            per_alignment = ALIGNMENT // torch.int32.itemsize
            padded = -(-2 * batch * heads // per_alignment) * per_alignment  # int32s a buffer spans
            self.block = torch.zeros(self.sites, padded, dtype=torch.int32, device=device)
            self.shape = (2, batch, heads)
        if self.taken == self.sites or self.shape != (2, batch, heads) or self.block.device != device:
            return None
        self.taken += 1
        return self.block[self.taken - 1, : 2 * batch * heads].view(self.shape)


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

    reproduced: (B, h, Tq, d_v), this check's own (overwritten with the difference); given:
    (B, h, Tq, d_v); query_is_real: (B, Tq) bool or None (all real). Returns two (B, h) float32
    tensors on the same device; a NaN on a real row makes the deviation NaN, not the magnitude.
    """
    difference = reproduced.sub_(given)  # (B, h, Tq, d_v); a NaN in either side stays NaN
    size = given.abs()  # (B, h, Tq, d_v)
    size.nan_to_num_(0.0, posinf=float("inf"))  # a NaN output counts in `difference`, not here
    if query_is_real is not None:
        padded = ~query_is_real[:, None, :, None]  # (B, 1, Tq, 1)
        difference.masked_fill_(padded, 0.0)
        size.masked_fill_(padded, 0.0)
    deviation = difference.abs_().amax(dim=(2, 3))  # (B, h); amax keeps a NaN
    return deviation.float(), size.amax(dim=(2, 3)).float()


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
    wants_weights: WantedForm | None = None,
    kinds: tuple[str, ...] | None = None,
) -> VerifiedForward:
    """One forward pass on the model's own kernel, each attention module checked as it runs
    (see verify_attention for which sites' weights are materialised). `kinds`: check only the
    sites of these kinds, for a pass that runs only them (e.g. a decoder pass given the encoder's
    outputs); every site of them must run."""
    model, family = loaded.model, loaded.family
    device = loaded.device
    source = source.to(device)
    target = None if target is None else target.to(device)
    sites = [site for site in family.sites(model) if kinds is None or site.kind in kinds]
    model_inputs = to_device(model_inputs, device)
    if family.decoder_only:  # one causal stack over the source tokens
        pass_inputs = PassInputs(target_mask=source.mask, position_ids=model_inputs.get("position_ids"))
        target = source
    else:
        source_mask = None if family.vision else source.mask  # (B, S)
        if source_mask is not None and target is None and bool(source_mask.all()):
            source_mask = None  # an encoder with every token real: nothing to mask (one sync per pass)
        pass_inputs = PassInputs(source_mask=source_mask, target_mask=None if target is None else target.mask)
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
    checks_of: dict[str, list[SiteCheck]] = {}
    for check in sorted(verification.checks, key=lambda c: (KINDS.index(c.site.kind), c.site.layer, c.site.call)):
        checks_of.setdefault(check.site.kind, []).append(check)
    maps = {}
    for kind, layers in verification.weights.items():
        query, key = _sides_of(kind, source, target)
        maps[kind] = AttentionMaps(
            kind, stack_layers(layers, kind), query.query_tokens, key.tokens, query.mask, key.mask
        )  # weights (B, L, H, Tq, Tk)
    return VerifiedForward(outputs, maps, {kind: relative_errors(checks) for kind, checks in checks_of.items()})


def _sides_of(kind: str, source: Side, target: Side | None) -> tuple[Side, Side]:
    """(query side, key side) of a kind."""
    if kind == DECODER:
        return target, target
    if kind == CROSS:
        return target, source
    return source, source
