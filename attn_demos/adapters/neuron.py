"""One attention cell taken apart: for one query, the query vector, every key, their elementwise
products and sums, the scale, bias, mask, soft-cap, logits and softmax, next to the row it is checked against:
the library's own weights (eager), or, where the fused kernel returns none (sdpa), the weights
the caller shows, verified through the model's output. Works for every supported family (T5's
bias, rotary q/k, soft-caps)."""

from __future__ import annotations

import numpy as np
import torch

from attn_demos.adapters.extract import tokenize
from attn_demos.adapters.families import CROSS, DECODER, ENCODER, VISION
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.precision import EAGER
from attn_demos.adapters.recompute import (
    PassInputs,
    attention_terms,
    capture_attention_inputs,
    captured_inputs,
)
from attn_demos.core.heads import soft_cap
from attn_demos.core.masks import sliding_window_mask
from attn_demos.errors import BadInputError

LIBRARY_LABEL = "library weight"  # eager: the library's own row
VERIFIED_LABEL = "verified weight (sdpa)"  # sdpa: the row shown, verified through the model's output


def neuron_terms(
    loaded: LoadedModel,
    text_or_inputs: str | dict,
    kind: str,
    layer: int,
    head: int,
    query_index: int,
    example: int = 0,
    verified_row: np.ndarray | None = None,
) -> dict:
    """The pieces of attention row (kind, layer, head, query_index) of one example.

    text_or_inputs: a text (tokenized like the Explorer does) or model inputs (encoder-decoders:
    with decoder_input_ids; vision: pixel_values). Returns numpy arrays: q (d,), k (Tk, d),
    products q_i·k_i (Tk, d), dots (Tk,), bias (Tk,) (zeros when the family has none), mask (Tk,)
    bool, logits (Tk,) (−inf where masked), softmax (Tk,), checked_against (Tk,) with checked_against_label;
    library (Tk,) (eager only); and scale, softcap, window, max_abs_err (softmax vs checked_against) and
    key_tokens when a text was given.

    verified_row (Tk,): the row checked against when the model runs on sdpa (it returns no weights): the
    row of weights the caller shows, verified through the model's output. Ignored with eager.
    """
    model = loaded.model
    inputs = dict(tokenize(loaded, [text_or_inputs])[0]) if isinstance(text_or_inputs, str) else dict(text_or_inputs)
    sites = [s for s in loaded.family.sites(model) if s.kind == kind]
    if not sites:
        raise BadInputError(f"this model has no {kind} attention (it has {', '.join(sorted({s.kind for s in loaded.family.sites(model)}))})")
    if not 0 <= layer < len(sites):
        raise BadInputError(f"choose a layer between 0 and {len(sites) - 1}")
    site = sites[layer]
    eager = loaded.attn_implementation == EAGER
    if not eager and verified_row is None:
        raise BadInputError("this model runs on sdpa and returns no weights: give the verified row to compare with")
    with torch.no_grad(), capture_attention_inputs(sites) as captured:
        outputs = model(**inputs, output_attentions=eager, return_dict=True)
    with torch.no_grad():
        terms = attention_terms(model, loaded.family, sites, site, captured_inputs(captured, site), _pass_inputs(loaded, inputs))
    if not 0 <= head < terms.q.shape[1]:
        raise BadInputError(f"choose a head between 0 and {terms.q.shape[1] - 1}")
    if not 0 <= query_index < terms.q.shape[2]:
        raise BadInputError(f"choose a query token between 0 and {terms.q.shape[2] - 1}")
    q = terms.q[example, head, query_index]  # (d,)
    k = terms.k[example, head]  # (Tk, d)
    products = q * k  # (Tk, d)
    dots = products.sum(dim=-1)  # (Tk,)
    scale = terms.scale if terms.scale is not None else q.shape[-1] ** -0.5
    logits = (q * scale) @ k.T  # (Tk,) as the core computes it
    if terms.softcap is not None:
        logits = soft_cap(logits, terms.softcap)
    bias = torch.zeros_like(logits) if terms.bias is None else terms.bias.expand(
        terms.q.shape[0], terms.q.shape[1], terms.q.shape[2], k.shape[0]
    )[example, head, query_index]  # (Tk,)
    logits = logits + bias
    mask = _mask_row(terms, example, query_index, k.shape[0])  # (Tk,)
    logits = logits.masked_fill(~mask, float("-inf"))
    softmax = torch.softmax(logits, dim=-1, dtype=terms.softmax_dtype).to(q.dtype).nan_to_num(0.0)  # (Tk,)
    if eager:
        checked_against = _library_weights(loaded, outputs, kind)[layer][example, head, query_index]  # (Tk,)
    else:
        checked_against = torch.as_tensor(np.asarray(verified_row), device=softmax.device)  # (Tk,)
        if checked_against.shape != softmax.shape:
            raise BadInputError(f"the verified row has {checked_against.shape[0]} weights for {softmax.shape[0]} keys")
    result = {
        "q": _array(q), "k": _array(k), "products": _array(products), "dots": _array(dots),
        "scale": float(scale), "bias": _array(bias), "mask": mask.cpu().numpy(), "softcap": terms.softcap,
        "window": terms.window, "logits": _array(logits), "softmax": _array(softmax), "checked_against": _array(checked_against),
        "checked_against_label": LIBRARY_LABEL if eager else VERIFIED_LABEL,
        "max_abs_err": float((softmax.double() - checked_against.double()).abs().max()),
    }
    if eager:
        result["library"] = result["checked_against"]
    if isinstance(text_or_inputs, str) and "input_ids" in inputs:
        ids = inputs["input_ids"][example].tolist()
        result["key_tokens"] = loaded.preprocessor.convert_ids_to_tokens(ids)
    return result


def _library_weights(loaded: LoadedModel, outputs, kind: str) -> tuple:
    """The library's tuple over layers of (B, H, Tq, Tk) for one kind."""
    if loaded.is_encoder_decoder:
        return {ENCODER: outputs.encoder_attentions, DECODER: outputs.decoder_attentions, CROSS: outputs.cross_attentions}[kind]
    if kind in (ENCODER, VISION, DECODER):
        return outputs.attentions
    raise BadInputError(f"this model has no {kind} attention")


def _pass_inputs(loaded: LoadedModel, inputs: dict) -> PassInputs:
    """The masks and positions the forward pass used, from the inputs it was given."""
    if loaded.family.vision:
        return PassInputs()
    source_mask = inputs.get("attention_mask")
    if source_mask is None:
        source_mask = torch.ones_like(inputs["input_ids"])
    if loaded.is_decoder_only:
        return PassInputs(target_mask=source_mask, position_ids=inputs.get("position_ids"))  # None: 0..T-1, as the model
    target_mask = None
    if loaded.is_encoder_decoder:
        target_mask = inputs.get("decoder_attention_mask")
        if target_mask is None:
            target_mask = torch.ones_like(inputs["decoder_input_ids"])
    return PassInputs(source_mask=source_mask, target_mask=target_mask)


def _mask_row(terms, example: int, query_index: int, key_length: int) -> torch.Tensor:
    """(Tk,) True where this query may attend: the family's mask, and its sliding window."""
    allowed = torch.ones(key_length, dtype=torch.bool, device=terms.q.device)
    if terms.mask is not None:
        full = terms.mask.expand(terms.q.shape[0], 1, terms.q.shape[2], key_length)  # (B, 1, Tq, Tk)
        allowed = allowed & full[example, 0, query_index]
    if terms.window is not None:
        allowed = allowed & sliding_window_mask(terms.q.shape[2], key_length, terms.window, terms.q.device)[0, 0, query_index]
    return allowed


def _array(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()
