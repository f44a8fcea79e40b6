"""Recompute every attention map from scratch: capture what enters each attention module, turn it
into the terms of attention (q, k, v, scale, bias, mask, …) with the module's own weights, and
apply the project's own core. The library's attention function is never called here."""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from attn_demos.adapters.families import (
    CROSS,
    DECODER,
    PER_HEAD,
    WHOLE,
    AttentionSite,
    Family,
    head_count,
    rotary_settings,
)
from attn_demos.core.blocks import Blocks, block_weights, blocks_for, zero_outside
from attn_demos.core.heads import repeat_kv_heads, rms_norm
from attn_demos.core.masks import decoder_mask, key_padding_mask, sliding_window_mask
from attn_demos.core.rotary import apply_rotary, rotary_angles, scaled_frequencies
from attn_demos.core.torch_attention import attention_scores, merge_heads, split_heads

_active = threading.local()  # .captured: the dict of the capture running in this thread, if any;
# .projections: whether that capture records the q, k, v projections' outputs
_install_lock = threading.Lock()
MODULE_PATH_ATTRIBUTE = "_attn_demos_module_path"
PROJECTION_ATTRIBUTE = "_attn_demos_projection_of"  # on a q/k/v projection: (attention module path, index)
PROJECTIONS_HOOKED_ATTRIBUTE = "_attn_demos_projections_hooked"  # on an attention module: (its path, names, projections)


@dataclass(frozen=True)
class CapturedInputs:
    """What entered one call of an attention module, and what its q, k, v projections returned
    in that call when they were recorded (index 0, 1, 2 -> (B, T, H·d))."""

    query_states: torch.Tensor  # (B, Tq, D)
    key_value_states: torch.Tensor  # (B, Tk, D): the query states again for self-attention
    projected: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class PassInputs:
    """What the forward pass was given that attention depends on beyond the captured states."""

    source_mask: torch.Tensor | None = None  # (B, S) 1 on real tokens (encoder / decoder-only side)
    target_mask: torch.Tensor | None = None  # (B, T) 1 on real decoder tokens (encoder-decoders)
    position_ids: torch.Tensor | None = None  # (B, T) positions for rotary embeddings; None: 0..T-1
    # what every layer of a kind shares, built once per pass: kind -> mask, (kind, window, Tq, Tk) -> Blocks
    built: dict = field(default_factory=dict, compare=False, repr=False)

    def mask(self, kind: str) -> torch.Tensor | None:
        """The boolean mask of a kind's sites, (B, 1, Tq|1, Tk) or None (every key)."""
        if kind not in self.built:
            self.built[kind] = _mask_for(kind, self.source_mask, self.target_mask)
        return self.built[kind]

    def blocks(self, kind: str, terms: AttentionTerms) -> Blocks:
        """The blocks of one site's mask and window (core.blocks), shared by the kind's layers alike."""
        key = (kind, terms.window, terms.q.shape[2], terms.k.shape[2])
        if key not in self.built:
            self.built[key] = blocks_for(allowed_keys(terms), terms.q.shape[2], terms.k.shape[2])
        return self.built[key]


@dataclass
class AttentionTerms:
    """Everything one attention site's weights are made of, after every transformation its family applies.

    weights = softmax(softcap(q·kᵀ·scale) + bias, masked to `mask` and the sliding `window`).
    """

    q: torch.Tensor  # (B, H, Tq, d)
    k: torch.Tensor  # (B, H, Tk, d), key heads already repeated for grouped-query attention
    v: torch.Tensor  # (B, H, Tk, d_v), value heads already repeated likewise
    scale: float | None  # multiplies q·kᵀ; None: 1/√d
    bias: torch.Tensor | None = None  # additive, broadcastable to (B, H, Tq, Tk)
    mask: torch.Tensor | None = None  # boolean, broadcastable to (B, H, Tq, Tk); True = may attend
    softcap: float | None = None  # logits become softcap·tanh(logits / softcap)
    window: int | None = None  # query i sees keys j with i - window < j (besides `mask`)
    softmax_dtype: torch.dtype | None = None  # the dtype the library runs this softmax in; None: q's


@contextmanager
def capture_attention_inputs(sites: list[AttentionSite], projections: tuple[str, ...] = ()):
    """While active, record what enters every site's module, call by call, and (when
    `projections` names the module's q, k, v projection attributes) what those returned.

    Yields a dict module path -> [CapturedInputs of each call, in order] (a module shared by
    several depths, as in ALBERT, is called once per depth). Only forward passes run by this
    thread are recorded, so requests that share one model in other threads (a web app) never
    see each other's inputs.

    Each attention module gets one permanent pre-hook the first time it is captured, which
    records into this thread's active capture (if any). Hooks are never added or removed while
    other threads may be running the model: torch snapshots a module's hooks and then looks up
    each one's with_kwargs flag, so a hook removed in between was called without kwargs.
    """
    _install_hooks(sites)
    if projections:
        _install_projection_hooks(sites, projections)
    captured: dict[str, list[CapturedInputs]] = {}
    outer = (getattr(_active, "captured", None), getattr(_active, "projections", False))
    _active.captured, _active.projections = captured, bool(projections)
    try:
        yield captured
    finally:
        _active.captured, _active.projections = outer


def _install_hooks(sites: list[AttentionSite]) -> None:
    with _install_lock:
        for site in sites:
            path = getattr(site.module, MODULE_PATH_ATTRIBUTE, None)
            if path is None:
                site.module.register_forward_pre_hook(_record_inputs, with_kwargs=True)
            if path != site.module_path:  # nn.Module.__setattr__ is slow: set once
                setattr(site.module, MODULE_PATH_ATTRIBUTE, site.module_path)


def _install_projection_hooks(sites: list[AttentionSite], projections: tuple[str, ...]) -> None:
    with _install_lock:
        for site in sites:
            # the projections themselves too: one replaced or wrapped since (an adapter) needs its own hook and tag
            done = (site.module_path, projections, tuple(map(site.module._modules.get, projections)))
            if site.module.__dict__.get(PROJECTIONS_HOOKED_ATTRIBUTE) == done:  # every pass asks: answer fast
                continue
            for index, name in enumerate(projections):
                projection = getattr(site.module, name)
                owner = getattr(projection, PROJECTION_ATTRIBUTE, None)
                if owner is None:
                    projection.register_forward_hook(_record_projection)
                if owner != (site.module_path, index):
                    setattr(projection, PROJECTION_ATTRIBUTE, (site.module_path, index))
            setattr(site.module, PROJECTIONS_HOOKED_ATTRIBUTE, done)


def _record_projection(projection, args, output) -> None:
    """The permanent hook on a q, k or v projection: its output joins its module's current call."""
    captured = getattr(_active, "captured", None)
    if captured is None or not getattr(_active, "projections", False):
        return
    path, index = getattr(projection, PROJECTION_ATTRIBUTE)
    calls = captured.get(path)
    current = calls[-1] if calls else None
    if current is None:
        return
    source = current.query_states if index == 0 else current.key_value_states  # (B, T, D)
    if args and args[0].data_ptr() == source.data_ptr():  # it projected this call's own input
        current.projected[index] = output.detach()  # (B, T, H·d)


def recorded_projections(family: Family) -> tuple[str, ...]:
    """The projection attributes whose outputs a capture records for this family: its separate
    q, k, v nn.Linear, or its one fused projection (split by the family)."""
    return family.projections


def _record_inputs(module, args, kwargs=None) -> None:
    """The permanent pre-hook; kwargs is missing only in a pass that overlaps the hook's installation."""
    captured = getattr(_active, "captured", None)
    if captured is None or kwargs is None:
        return
    query_states = kwargs.get("hidden_states", args[0] if args else None)  # (B, Tq, D)
    key_value_states = kwargs.get("key_value_states")  # (B, Tk, D) for cross-attention
    if key_value_states is None:
        key_value_states = kwargs.get("encoder_hidden_states")
    if key_value_states is None:
        key_value_states = query_states  # self-attention
    inputs = CapturedInputs(query_states.detach(), key_value_states.detach())
    captured.setdefault(getattr(module, MODULE_PATH_ATTRIBUTE), []).append(inputs)


def captured_inputs(captured: dict[str, list[CapturedInputs]], site: AttentionSite) -> CapturedInputs | None:
    """The inputs of `site`'s call in this pass, or None if the pass did not reach it."""
    calls = captured.get(site.module_path, [])
    return calls[site.call] if site.call < len(calls) else None


def attention_terms(
    model: torch.nn.Module,
    family: Family,
    sites: list[AttentionSite],
    site: AttentionSite,
    inputs: CapturedInputs,
    pass_inputs: PassInputs,
    scale_override: float | None = None,
) -> AttentionTerms:
    """The terms of one site's attention, from its captured inputs and its module's own weights.

    In order: project q, k, v (separate or fused projections); clamp them (OLMo's clip_qkv);
    RMSNorm of q and k per head (Qwen3, Gemma 3) or over the whole projection (OLMo 2); rotary
    positions with the config's scaling, per layer type, where the layer has rotary (Llama family,
    GPT-NeoX, SmolLM3); an upcast of q and k to float32 (GPT-2's reorder_and_upcast_attn, GPT-Neo);
    repeat key/value heads for grouped-query attention; then the scale, bias, mask, window and
    soft-cap the family and config prescribe.
    `scale_override` replaces the family's scale (a control: T5 with 1/√d must not match).
    """
    config = model.config
    q, k, v = _project(family, site.module, config, inputs)  # (B, H|H_kv, T, d)
    bound = None if family.clip is None else family.clip(config)
    if bound is not None:  # OLMo's clip_qkv
        q, k, v = q.clamp(-bound, bound), k.clamp(-bound, bound), v.clamp(-bound, bound)
    if family.qk_norm is not None:
        q, k = _normed(family.qk_norm, site.module, config.rms_norm_eps, q, k, family.qk_norm_offset)
    if family.rotary is not None and (family.rotary_on is None or family.rotary_on(config, site.layer)):
        q, k = _rotate(family, config, site.layer, q, k, pass_inputs.position_ids)
    upcast = family.upcast is not None and family.upcast(config)
    if upcast:  # GPT-2's reorder_and_upcast_attn: the logits and the softmax in float32
        q, k = q.float(), k.float()  # (B, H, Tq, d), (B, H_kv, Tk, d)
    k = repeat_kv_heads(k, q.shape[1])  # (B, H, Tk, d)
    v = repeat_kv_heads(v, q.shape[1])  # (B, H, Tk, d_v)
    bias = None
    if family.position_bias is not None:
        bias = family.position_bias(model, sites, site.kind, q.shape[2], k.shape[2])  # (1, H, Tq, Tk)
    return AttentionTerms(
        q=q,
        k=k,
        v=v,
        scale=_scale(family, config, site.layer, q.shape[-1]) if scale_override is None else scale_override,
        bias=bias,
        mask=pass_inputs.mask(site.kind),  # (B, 1, Tq|1, Tk) or None
        softcap=None if family.softcap is None else family.softcap(config),
        window=None if family.window is None else family.window(config, site.layer),
        # upcast: float32 logits plus the model-dtype mask, so the softmax runs in the wider of the two (GPT-Neo)
        softmax_dtype=torch.promote_types(torch.float32, v.dtype) if upcast else family.softmax_dtype,
    )


def _project(family: Family, module, config, inputs: CapturedInputs):
    """q (B, H, Tq, d), k and v (B, H_kv, Tk, d) from the module's own projections: their recorded
    outputs of this call when all were recorded, else the projections run again on the inputs."""
    query_states, key_value_states = inputs.query_states, inputs.key_value_states  # (B, Tq, D), (B, Tk, D)
    if family.split is not None:  # one fused projection of the query states (self-attention only)
        fused = inputs.projected.get(0)  # (B, T, ·) or None
        if fused is None or fused.shape[:2] != query_states.shape[:2]:
            fused = getattr(module, family.projections[0])(query_states)  # (B, T, ·)
        return family.split(config, fused)
    heads = head_count(module, config)
    kv_heads = (getattr(config, "num_key_value_heads", None) if family.decoder_only else None) or heads
    lengths = (query_states.shape[:2], key_value_states.shape[:2], key_value_states.shape[:2])
    recorded = [inputs.projected.get(index) for index in range(3)]  # (B, T, H·d) each, or None
    if family.clip is not None:  # OLMo clamps its projections' outputs in place: the recorded ones are clamped already
        recorded = [None, None, None]
    if all(r is not None and r.shape[:2] == n for r, n in zip(recorded, lengths)):
        q_out, k_out, v_out = recorded  # (B, Tq, H·d), (B, Tk, H_kv·d), (B, Tk, H_kv·d)
    else:
        w_q, w_k, w_v = (getattr(module, p) for p in family.projections)
        q_out, k_out, v_out = w_q(query_states), w_k(key_value_states), w_v(key_value_states)
    return split_heads(q_out, heads), split_heads(k_out, kv_heads), split_heads(v_out, kv_heads)


def _normed(over: str, module, eps: float, q: torch.Tensor, k: torch.Tensor, offset: float = 0.0):
    """RMSNorm (in float32) of q (B, H, Tq, d) and k (B, H_kv, Tk, d) by the module's q_norm and
    k_norm, scaled by offset + weight: over each head's channels (PER_HEAD), or over the whole projection (WHOLE)."""
    if over == PER_HEAD:
        q = rms_norm(q, module.q_norm.weight, eps, torch.float32, offset)  # (B, H, Tq, d)
        k = rms_norm(k, module.k_norm.weight, eps, torch.float32, offset)  # (B, H_kv, Tk, d)
        return q, k
    if over != WHOLE:
        raise ValueError(f"q/k norm over {over!r}: not one of {PER_HEAD!r}, {WHOLE!r}")
    heads, kv_heads = q.shape[1], k.shape[1]
    q = rms_norm(merge_heads(q), module.q_norm.weight, eps, torch.float32, offset)  # (B, Tq, H·d)
    k = rms_norm(merge_heads(k), module.k_norm.weight, eps, torch.float32, offset)  # (B, Tk, H_kv·d)
    return split_heads(q, heads), split_heads(k, kv_heads)


def _rotate(family: Family, config, layer: int, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor | None):
    """Rotary positions, with the config's scaling for `layer`, on q (B, H, Tq, d) and k (B, H_kv, Tk, d) (self-attention: Tq = Tk)."""
    settings = rotary_settings(config, family, layer)
    if position_ids is None:
        position_ids = torch.arange(k.shape[2], device=k.device)[None]  # (1, T): what the model uses unasked
    length = int(position_ids.max()) + 1 if position_ids.numel() else 0  # the pass's length, as dynamic and longrope read it
    frequencies, attention_factor = scaled_frequencies(settings.rotary_dim, settings.parameters, settings.max_positions, length)
    angles = rotary_angles(position_ids.to(k.device), frequencies.to(k.device))  # (B|1, T, r/2) float32
    return apply_rotary(q, angles, attention_factor), apply_rotary(k, angles, attention_factor)


def _scale(family: Family, config, layer: int, head_dim: int) -> float | None:
    return family.scale(config, layer, head_dim) if callable(family.scale) else family.scale


def allowed_keys(terms: AttentionTerms) -> torch.Tensor | None:
    """The boolean mask (broadcastable to (B, H, Tq, Tk)) with the sliding window folded in; None: all."""
    mask = terms.mask
    if terms.window is not None:
        window = sliding_window_mask(terms.q.shape[2], terms.k.shape[2], terms.window, terms.q.device)  # (1, 1, Tq, Tk)
        mask = window if mask is None else mask & window
    return mask


def terms_logit_size(terms: AttentionTerms) -> float:
    """max |logit| over the keys each query may attend: |q·kᵀ·scale + bias|, before any soft-cap
    (the rounding happens there); what precision.tolerance_for needs to allow for the logits' size."""
    logits = attention_scores(terms.q, terms.k, terms.scale)  # (B, H, Tq, Tk)
    if terms.bias is not None:
        logits = logits + terms.bias
    mask = allowed_keys(terms)
    if mask is not None:
        logits = logits.masked_fill(~mask, 0.0)
    return float(logits.abs().amax()) if logits.numel() else 0.0


def terms_weights(terms: AttentionTerms, blocks: Blocks | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """The attention weights (B, H, Tq, Tk) the core computes from one site's terms, a block of
    query rows at a time over the keys each may attend (core.blocks; `blocks` None: from the
    terms' mask), written into `out` (B, H, Tq, Tk) when given."""
    batch, heads, q_len, _ = terms.q.shape
    k_len = terms.k.shape[2]
    blocks = blocks or blocks_for(allowed_keys(terms), q_len, k_len)
    q = scaled_queries(terms)  # (B, H, Tq, d)

    weights = q.new_empty(batch, heads, q_len, k_len) if out is None else out  # (B, H, Tq, Tk)
    zero_outside(weights, blocks)
    for block in blocks.blocks:
        if block.keys.stop > block.keys.start:
            block_weights(
                q, terms.k, block, slice(None), terms.bias, terms.softcap, terms.softmax_dtype, blocks.rows_without_keys,
                out=weights[:, :, block.rows, block.keys],
            )  # (B, H, r, span)
    return weights


def scaled_queries(terms: AttentionTerms) -> torch.Tensor:
    """q (B, H, Tq, d) times the scale (1/√d when the terms give none): scaling q before the
    product is one pass over Tq·d instead of Tq·Tk (as torch_attention.fast_attention does)."""
    return terms.q * (terms.q.shape[-1] ** -0.5 if terms.scale is None else terms.scale)


def recompute_weights(
    model: torch.nn.Module,
    family: Family,
    sites: list[AttentionSite],
    captured: dict[str, list[CapturedInputs]],
    pass_inputs: PassInputs,
    scale_override: float | None = None,
    logit_size: bool = True,
) -> tuple[dict[str, torch.Tensor], float]:
    """(kind -> (B, L, H, Tq, Tk) attention weights computed by the core from captured inputs,
    the largest |logit| of any site (see terms_logit_size; 0.0 unless `logit_size`)). Each
    layer's weights are written into its kind's stack as they are made."""
    ran = [(site, inputs) for site in sites if (inputs := captured_inputs(captured, site)) is not None]
    layers = Counter(site.kind for site, _ in ran)
    stacks: dict[str, torch.Tensor] = {}  # kind -> (B, L, H, Tq, Tk)
    filled: Counter = Counter()
    largest = 0.0
    with torch.no_grad():
        for site, inputs in ran:
            terms = attention_terms(model, family, sites, site, inputs, pass_inputs, scale_override)
            batch, heads, q_len, _ = terms.q.shape
            shape = (batch, layers[site.kind], heads, q_len, terms.k.shape[2])
            if site.kind not in stacks:
                stacks[site.kind] = terms.q.new_empty(shape)
            elif stacks[site.kind].shape != shape:
                raise ValueError(f"{site.kind} layers differ in shape: {tuple(stacks[site.kind].shape)} then {shape}")
            out = stacks[site.kind][:, filled[site.kind]]  # (B, H, Tq, Tk)
            terms_weights(terms, pass_inputs.blocks(site.kind, terms), out=out)
            filled[site.kind] += 1
            if logit_size:
                largest = max(largest, terms_logit_size(terms))
    return stacks, largest  # (B, L, H, Tq, Tk) per kind


def _mask_for(kind: str, source_mask, target_mask):
    if kind == DECODER:
        return decoder_mask(target_mask)
    if kind == CROSS or source_mask is not None:
        return key_padding_mask(source_mask)
    return None
