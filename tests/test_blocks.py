"""The core's weights a block of query rows at a time (core/blocks.py), as the sdpa check and the
eager recomputation build them, against the tutorial formula (torch_attention.attention) on the
whole matrix: every mask that lets blocks skip keys, with several blocks and several head steps."""

from __future__ import annotations

import pytest
import torch

from attn_demos.adapters import verify
from attn_demos.adapters.recompute import AttentionTerms, allowed_keys, terms_weights
from attn_demos.core import blocks as core_blocks
from attn_demos.core.aggregate import FUSIONS
from attn_demos.core.masks import decoder_mask, key_padding_mask, sliding_window_mask
from attn_demos.core.torch_attention import attention, merge_heads

# The blocks scale q before the product, the formula scales q·kᵀ after it: in float64 the scores
# round differently by a few ulps (scores here are below 10: ~1e-15); 1e-12 leaves a thousandfold margin.
REORDERED_SCALE_TOLERANCE = 1e-12
BATCH, HEADS, LENGTH, HEAD_DIM = 2, 3, 11, 4
MASKS = ("none", "causal", "causal, left padding", "window", "key padding", "per head", "bias and softcap")


def _terms(case: str) -> AttentionTerms:
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(BATCH, HEADS, LENGTH, HEAD_DIM, generator=generator, dtype=torch.float64) for _ in range(3))
    real = torch.ones(BATCH, LENGTH, dtype=torch.bool)  # (B, T)
    terms = AttentionTerms(q=q, k=k, v=v, scale=None)
    if case == "causal":
        terms.mask = decoder_mask(real)  # (B, 1, T, T)
    elif case == "causal, left padding":
        real[1, :4] = False  # example 1's first rows attend no key
        terms.mask = decoder_mask(real)
    elif case == "window":
        terms.mask, terms.window = decoder_mask(real), 3
    elif case == "key padding":
        real[0, 7:] = False
        terms.mask = key_padding_mask(real)  # (B, 1, 1, T)
    elif case == "per head":
        terms.mask = torch.rand(BATCH, HEADS, LENGTH, LENGTH, generator=generator) > 0.4  # (B, H, T, T)
    elif case == "bias and softcap":
        terms.mask = decoder_mask(real)
        terms.bias = torch.randn(1, HEADS, LENGTH, LENGTH, generator=generator, dtype=torch.float64)  # (1, H, T, T)
        terms.softcap = 2.0
    return terms


def _expected(terms: AttentionTerms) -> tuple[torch.Tensor, torch.Tensor]:
    """(output (B, H, T, d_v), weights (B, H, T, T)) by the tutorial formula on the whole matrix."""
    mask = terms.mask
    if terms.window is not None:
        mask = mask & sliding_window_mask(LENGTH, LENGTH, terms.window)
    return attention(terms.q, terms.k, terms.v, mask=mask, bias=terms.bias, softcap=terms.softcap)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 3 query rows and one head per step: every path through several blocks."""
    monkeypatch.setattr(core_blocks, "QUERY_BLOCK", 3)
    monkeypatch.setattr(verify, "HEADS_PER_CHUNK", 1)


@pytest.mark.parametrize("case", MASKS)
def test_weights_built_in_blocks_are_the_formula(case, small_blocks):
    terms = _terms(case)
    _, expected = _expected(terms)
    weights = terms_weights(terms)  # (B, H, T, T)
    torch.testing.assert_close(weights, expected, rtol=0, atol=REORDERED_SCALE_TOLERANCE)
    assert not weights.isnan().any()
    out = torch.full_like(expected, 7.0)  # written into, every entry
    terms_weights(terms, out=out)
    torch.testing.assert_close(out, expected, rtol=0, atol=REORDERED_SCALE_TOLERANCE)


@pytest.mark.parametrize("case", ["causal", "causal, left padding", "window"])
def test_blocks_skip_the_keys_no_row_of_them_attends(case, small_blocks):
    """A causal mask (or a window) gives blocks of rows that span fewer keys than all."""
    terms = _terms(case)
    blocks = core_blocks.blocks_for(allowed_keys(terms), LENGTH, LENGTH)
    spans = [b.keys.stop - b.keys.start for b in blocks.blocks]
    assert len(blocks.blocks) > 1 and min(spans) < LENGTH
    assert blocks.rows_without_keys == (case == "causal, left padding")


@pytest.mark.parametrize("form", ["heads", *FUSIONS, None])
@pytest.mark.parametrize("case", ["causal, left padding", "per head", "bias and softcap"])
def test_the_check_in_blocks_builds_each_form_and_finds_a_wrong_output(case, form, small_blocks):
    terms = _terms(case)
    output, expected = _expected(terms)  # (B, H, T, d_v), (B, H, T, T)
    context = merge_heads(output)  # (B, T, H·d_v): what a correct module returns
    weights, check = verify.check_site(None, terms, context, None, form)
    assert float(check.deviation.max()) <= REORDERED_SCALE_TOLERANCE
    if form == "heads":
        torch.testing.assert_close(weights, expected, rtol=0, atol=REORDERED_SCALE_TOLERANCE)
    elif form is not None:
        fused = {"mean": expected.mean(dim=1), "max": expected.amax(dim=1), "min": expected.amin(dim=1)}[form]
        torch.testing.assert_close(weights, fused, rtol=0, atol=REORDERED_SCALE_TOLERANCE)
    else:
        assert weights is None
    context[1, LENGTH - 1, HEAD_DIM + 2] += 1e-3  # example 1, the last row (the last block), head 1
    _, wrong = verify.check_site(None, terms, context, None, form)
    assert float(wrong.deviation[1, 1]) > 5e-4
    assert float(wrong.deviation[0].max()) <= REORDERED_SCALE_TOLERANCE  # the other example is untouched
