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
from attn_demos.adapters.maps import AttentionMaps
from attn_demos.adapters.precision import to_device
from attn_demos.adapters.recompute import (
    MODULE_PATH_ATTRIBUTE,
    AttentionTerms,
    PassInputs,
    allowed_keys,
    attention_terms,
    capture_attention_inputs,
    captured_inputs,
    recorded_projections,
    scaled_queries,
)
from attn_demos.core.aggregate import FUSIONS  # a fusion gives (B, Tq, Tk)
from attn_demos.core.blocks import Blocks, block_weights, blocks_for, blocks_of_heads, zero_outside
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
    query rows, max |recomputed output − module output| and max |module output| in that head's columns."""

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
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # kind -> (B, L, H, Tq, Tk): its kept layers in order
    kept: dict[str, int] = field(default_factory=dict)  # kind -> how many of its layers keep their weights
    filled: dict[str, int] = field(default_factory=dict)  # kind -> how many of them have run

    def next_layer(self, kind: str, shape: tuple[int, int, int, int], dtype: torch.dtype, device) -> torch.Tensor:
        """Where the next kept layer of `kind` goes: (B, H, Tq, Tk), a view of the kind's stack
        (allocated at its first kept layer, so the layers are never copied into it)."""
        if kind not in self.weights:
            self.weights[kind] = torch.empty(shape[0], self.kept[kind], *shape[1:], dtype=dtype, device=device)
            self.filled[kind] = 0
        stack = self.weights[kind]  # (B, L, H, Tq, Tk)
        if (stack.shape[0], *stack.shape[2:]) != shape or stack.dtype != dtype:
            raise ValueError(f"{kind} layers differ in shape: {tuple(stack.shape)} then {shape} ({dtype})")
        index = self.filled[kind]
        self.filled[kind] = index + 1
        return stack[:, index]


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
    forms = {site: wanted_form(wants_weights(site)) for site in sites}  # asked once per site
    for site in sites:
        if forms[site] == HEADS and keep_weights:
            verification.kept[site.kind] = verification.kept.get(site.kind, 0) + 1
    site_of_call = {(s.module_path, s.call): s for s in sites}
    calls_seen: dict[str, int] = {}
    zeroed = ZeroedMaxima(len(sites))
    rows_of: dict[str, torch.Tensor | None] = {}  # kind -> its real query rows

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
            form = forms[site]
            out = None
            if form == HEADS and keep_weights:
                shape = (terms.q.shape[0], terms.q.shape[1], terms.q.shape[2], terms.k.shape[2])  # (B, H, Tq, Tk)
                out = verification.next_layer(site.kind, shape, working_dtype(terms.q.dtype), terms.q.device)
            if site.kind not in rows_of:
                rows_of[site.kind] = _query_rows(site.kind, pass_inputs)
            blocks = pass_inputs.blocks(site.kind, terms)
            weights, check = check_site(site, terms, context, rows_of[site.kind], form, zeroed, blocks, out)
            verification.checks.append(check)
            if form is not None and on_weights is not None:
                on_weights(site, weights)

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
    """(B, Tq) bool: which query rows are real for a site of this kind (None: all; on the CPU,
    where asking costs no sync, also when every row is real)."""
    mask = pass_inputs.target_mask if kind in (DECODER, CROSS) else pass_inputs.source_mask
    if mask is None or (mask.device.type == "cpu" and bool(mask.all())):
        return None
    return mask.bool()


def check_site(
    site: AttentionSite,
    terms: AttentionTerms,
    context: torch.Tensor,
    query_is_real: torch.Tensor | None,
    form: str | bool | None = HEADS,
    zeroed: ZeroedMaxima | None = None,
    blocks: Blocks | None = None,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, SiteCheck]:
    """The core's weights for one site in the wanted form (HEADS: (B, H, Tq, Tk), written into
    `out` when given; a fusion: (B, Tq, Tk); None: nothing), and weights·v compared with `context`
    (B, Tq, H·d), what the module itself computed.

    With nothing wanted, on a GPU with triton, one fused kernel checks the site and stores
    nothing of size Tq×Tk (its results go into a buffer of `zeroed` where one is left). Otherwise
    the scores are built a block of query rows at a time over the keys the block may attend
    (core.blocks: a causal mask skips about half; `blocks` None: from the terms' mask), as many
    heads at a time as CHUNK_BYTES of scores hold (at least one; half precision in float32);
    whole heads go into one preallocated layer, a fusion into one running map, so the peak extra
    memory is that layer (or map) plus a few heads' temporaries. Every head's weights·v is then
    compared with `context` in one step (a few element-wise passes per site rather than per
    step: on a CPU each costs more than its work).
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
    blocks = blocks or blocks_for(allowed_keys(terms), q_len, k_len)
    q = scaled_queries(replace(terms, q=terms.q.to(work)))  # (B, H, Tq, d)
    k, v = terms.k.to(work), terms.v.to(work)  # (B, H, Tk, d), (B, H, Tk, d_v)
    bias = None if terms.bias is None else terms.bias.to(work)  # broadcastable to (B, H, Tq, Tk)
    steps = blocks_of_heads(blocks, batch, heads, CHUNK_BYTES, torch.finfo(work).bits // 8, HEADS_PER_CHUNK)
    one_step = blocks.whole and len(steps) == 1  # every score at once: its results are used as they come
    weights = out  # (B, H, Tq, Tk) for HEADS, (B, Tq, Tk) for a fusion
    if form == HEADS and weights is None and not one_step:
        weights = q.new_empty(batch, heads, q_len, k_len)  # (B, H, Tq, Tk)
    elif form is not None and form != HEADS and not one_step:
        weights = q.new_zeros(batch, q_len, k_len)  # (B, Tq, Tk): zero where no block reaches
    if form == HEADS and not one_step:
        zero_outside(weights, blocks)
    recomputed_output = None  # (B, H, Tq, d_v): weights·v
    if not one_step:
        recomputed_output = q.new_zeros(batch, heads, q_len, v_dim)  # (B, H, Tq, d_v): zero on rows that attend no key
    folded = set()  # the first rows of the blocks a fusion has started
    for block, chunk in steps:
        rows, keys = block.rows, block.keys
        step_weights = block_weights(
            q, k, block, chunk, bias, terms.softcap, terms.softmax_dtype, blocks.rows_without_keys,
            out=None if form != HEADS or weights is None else weights[:, chunk, rows, keys],
        )  # (B, h, r, span): written into the layer's weights when they are wanted whole
        if one_step:
            recomputed_output = step_weights @ v  # (B, H, Tq, d_v)
            if form == HEADS:
                weights = step_weights
            elif form is not None:
                weights = _fold(None, step_weights, form)  # (B, Tq, Tk)
            continue
        recomputed_output[:, chunk, rows] = step_weights @ v[:, chunk, keys]  # (B, h, r, d_v)
        if form != HEADS and form is not None:
            region = weights[:, rows, keys]  # (B, r, span), a view
            _fold(region if rows.start in folded else None, step_weights, form, into=region)
            folded.add(rows.start)
        del step_weights
    if form == "mean":
        weights /= heads
    given = context.reshape(batch, q_len, heads, v_dim).transpose(1, 2)  # (B, H, Tq, d_v)
    return weights, SiteCheck(site, *head_deviation(recomputed_output, given, query_is_real))


def _fold(fused: torch.Tensor | None, chunk_weights: torch.Tensor, how: str, into: torch.Tensor | None = None):
    """A running fusion over heads: `fused` (B, Tq, Tk) or None, folded with one chunk's weights
    (B, h, Tq, Tk): sums for "mean" (divided by H at the end), else running max or min; written
    into `into` when given (a view the fusion lives in)."""
    if how == "mean":
        part = chunk_weights.sum(dim=1)  # (B, Tq, Tk)
        if fused is not None:
            return fused.add_(part)
    else:
        part = chunk_weights.amax(dim=1) if how == "max" else chunk_weights.amin(dim=1)  # (B, Tq, Tk)
        if fused is not None:
            return torch.maximum(fused, part, out=fused) if how == "max" else torch.minimum(fused, part, out=fused)
    return part if into is None else into.copy_(part)


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


def head_deviation(
    recomputed_output: torch.Tensor, given: torch.Tensor, query_is_real: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example and head, over real query rows: max |recomputed output − given| and max |given|.

    recomputed_output: (B, h, Tq, d_v), this check's own (overwritten with the difference); given:
    (B, h, Tq, d_v); query_is_real: (B, Tq) bool or None (all real). Returns two (B, h) float32
    tensors on the same device; a NaN on a real row makes the deviation NaN, not the magnitude.
    """
    difference = recomputed_output.sub_(given)  # (B, h, Tq, d_v); a NaN in either side stays NaN
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
    for kind, stack in verification.weights.items():
        query, key = _sides_of(kind, source, target)
        maps[kind] = AttentionMaps(kind, stack, query.query_tokens, key.tokens, query.mask, key.mask)  # weights (B, L, H, Tq, Tk)
    return VerifiedForward(outputs, maps, {kind: relative_errors(checks) for kind, checks in checks_of.items()})


def _sides_of(kind: str, source: Side, target: Side | None) -> tuple[Side, Side]:
    """(query side, key side) of a kind."""
    if kind == DECODER:
        return target, target
    if kind == CROSS:
        return target, source
    return source, source
