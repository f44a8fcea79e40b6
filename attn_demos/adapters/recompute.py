"""Recompute every attention map from scratch: capture what enters each attention module, then
apply the project's own core to the module's projection weights. The library's attention
function is never called here."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

from attn_demos.adapters.families import CROSS, DECODER, AttentionSite, Family, head_count
from attn_demos.core.masks import decoder_mask, key_padding_mask
from attn_demos.core.torch_attention import multi_head_attention

_active = threading.local()  # .captured: the dict of the capture running in this thread, if any
_install_lock = threading.Lock()
SITE_NAME_ATTRIBUTE = "_attn_demos_site_name"


@contextmanager
def capture_attention_inputs(sites: list[AttentionSite]):
    """While active, record for each site the (query_states, key_value_states) that enter it.

    Yields a dict site.name -> (query_states (B, Tq, D), key_value_states (B, Tk, D)).
    Only forward passes run by this thread are recorded, so requests that share one model in
    other threads (a web app) never see each other's inputs.

    Each attention module gets one permanent pre-hook the first time it is captured, which
    records into this thread's active capture (if any). Hooks are never added or removed while
    other threads may be running the model: torch snapshots a module's hooks and then looks up
    each one's with_kwargs flag, so a hook removed in between was called without kwargs.
    """
    _install_hooks(sites)
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    outer = getattr(_active, "captured", None)
    _active.captured = captured
    try:
        yield captured
    finally:
        _active.captured = outer


def _install_hooks(sites: list[AttentionSite]) -> None:
    with _install_lock:
        for site in sites:
            if getattr(site.module, SITE_NAME_ATTRIBUTE, None) is None:
                site.module.register_forward_pre_hook(_record_inputs, with_kwargs=True)
            setattr(site.module, SITE_NAME_ATTRIBUTE, site.name)


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
    captured[getattr(module, SITE_NAME_ATTRIBUTE)] = (query_states.detach(), key_value_states.detach())


def recompute_weights(
    model: torch.nn.Module,
    family: Family,
    sites: list[AttentionSite],
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]],
    source_mask: torch.Tensor | None,
    target_mask: torch.Tensor | None = None,
    scale_override: float | None = None,
) -> dict[str, torch.Tensor]:
    """kind -> (B, L, H, Tq, Tk) attention weights computed by the core from captured inputs.

    source_mask (B, S) and target_mask (B, T) are 1 on real tokens; `scale` overrides the
    family's scale (a control: T5 with 1/√d must not match).
    """
    scale = family.scale if scale_override is None else scale_override
    per_kind: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for site in sites:
            if site.name not in captured:
                continue
            query_states, key_value_states = captured[site.name]  # (B, Tq, D), (B, Tk, D)
            mask = _mask_for(site.kind, source_mask, target_mask)  # (B, 1, Tq|1, Tk) or None
            bias = None
            if family.position_bias is not None:
                bias = family.position_bias(
                    model, sites, site.kind, query_states.shape[1], key_value_states.shape[1]
                )  # (1, H, Tq, Tk)
            w_q, w_k, _ = (getattr(site.module, p) for p in family.projections)
            _, weights = multi_head_attention(
                query_states,
                key_value_states,
                w_q,
                w_k,
                None,
                head_count(site.module, model.config),
                mask=mask,
                bias=bias,
                scale=scale,
            )  # weights: (B, H, Tq, Tk)
            per_kind.setdefault(site.kind, []).append(weights)
    return {kind: torch.stack(layers, dim=1) for kind, layers in per_kind.items()}  # (B, L, H, Tq, Tk)


def _mask_for(kind: str, source_mask, target_mask):
    if kind == DECODER:
        return decoder_mask(target_mask)
    if kind == CROSS or source_mask is not None:
        return key_padding_mask(source_mask)
    return None
