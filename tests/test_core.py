"""The attention core against hand computation, against each other, and against torch's own SDPA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attn_demos.core import numpy_attention as npa
from attn_demos.core import torch_attention as tha
from attn_demos.core.masks import causal_mask, decoder_mask, key_padding_mask
from attn_demos.core.validation import ShapeError

SEED_Q = [[1.0, 0.0, 1.0]]
SEED_K = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
SEED_V = [[1.0, 2.0], [3.0, 4.0]]

# By hand: q·k₀ = 1, q·k₁ = 0; d_k = 3, so scores are [1/√3, 0].
SEED_SCORES = np.array([[1 / math.sqrt(3), 0.0]])
_E = math.exp(1 / math.sqrt(3))
SEED_WEIGHTS = np.array([[_E / (_E + 1), 1 / (_E + 1)]])
# output = w₀·v₀ + w₁·v₁ = w₀·[1, 2] + w₁·[3, 4]
SEED_OUTPUT = np.array(
    [[SEED_WEIGHTS[0, 0] * 1 + SEED_WEIGHTS[0, 1] * 3, SEED_WEIGHTS[0, 0] * 2 + SEED_WEIGHTS[0, 1] * 4]]
)


def _rng_qkv(seed=0, batch=2, heads=3, tq=5, tk=7, d_k=4, d_v=6):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(batch, heads, tq, d_k))  # (B, H, Tq, d_k)
    k = rng.normal(size=(batch, heads, tk, d_k))  # (B, H, Tk, d_k)
    v = rng.normal(size=(batch, heads, tk, d_v))  # (B, H, Tk, d_v)
    return q, k, v


# --- the seed tutorial ---------------------------------------------------------------------------


def test_seed_numbers_are_the_hand_computed_ones():
    assert SEED_SCORES[0, 0] == pytest.approx(0.5773502691896258, abs=1e-15)
    assert SEED_WEIGHTS[0] == pytest.approx([0.6404574756806275, 0.3595425243193725], abs=1e-15)
    assert SEED_OUTPUT[0] == pytest.approx([1.7190850486387448, 2.7190850486387452], abs=1e-15)


def test_numpy_core_on_the_seed_tutorial():
    q, k, v = (np.array(m) for m in (SEED_Q, SEED_K, SEED_V))
    np.testing.assert_allclose(npa.attention_scores(q, k), SEED_SCORES, rtol=0, atol=1e-15)
    output, weights = npa.attention(q, k, v)
    np.testing.assert_allclose(weights, SEED_WEIGHTS, rtol=0, atol=1e-15)
    np.testing.assert_allclose(output, SEED_OUTPUT, rtol=0, atol=1e-14)


def test_torch_core_on_the_seed_tutorial():
    q, k, v = (torch.tensor(m, dtype=torch.float64) for m in (SEED_Q, SEED_K, SEED_V))
    np.testing.assert_allclose(tha.attention_scores(q, k).numpy(), SEED_SCORES, rtol=0, atol=1e-15)
    output, weights = tha.attention(q, k, v)
    np.testing.assert_allclose(weights.numpy(), SEED_WEIGHTS, rtol=0, atol=1e-15)
    np.testing.assert_allclose(output.numpy(), SEED_OUTPUT, rtol=0, atol=1e-14)


# --- numpy vs torch vs torch's SDPA --------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_and_torch_cores_agree(seed):
    q, k, v = _rng_qkv(seed)
    np_out, np_w = npa.attention(q, k, v)
    t_out, t_w = tha.attention(*(torch.from_numpy(x) for x in (q, k, v)))
    np.testing.assert_allclose(t_w.numpy(), np_w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t_out.numpy(), np_out, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [None, 1.0, 0.3])
def test_torch_core_matches_torch_sdpa(scale):
    q, k, v = (torch.from_numpy(x) for x in _rng_qkv(3))
    mask = torch.from_numpy(np.random.default_rng(4).random((2, 1, 5, 7)) > 0.3)  # (B, 1, Tq, Tk)
    mask[..., 0] = True  # every query keeps at least one key (SDPA gives NaN otherwise)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)  # (B, H, Tq, d_v)
    output, weights = tha.attention(q, k, v, mask=mask, scale=scale)
    np.testing.assert_allclose(output.numpy(), expected.numpy(), rtol=0, atol=1e-12)
    np_out, _ = npa.attention(*(x.numpy() for x in (q, k, v)), mask=mask.numpy(), scale=scale)
    np.testing.assert_allclose(np_out, expected.numpy(), rtol=0, atol=1e-12)


def test_weights_are_the_softmax_of_the_definition():
    q, k, v = _rng_qkv(5)
    _, weights = npa.attention(q, k, v)
    scores = np.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=0, atol=1e-13)


# --- masks, scale and bias -----------------------------------------------------------------------


@pytest.mark.parametrize("core", ["numpy", "torch"])
def test_key_padding_gets_exactly_zero_weight(core):
    q, k, v = _rng_qkv(6)
    is_real = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0]])  # (B, Tk)
    mask = key_padding_mask(is_real)  # (B, 1, 1, Tk)
    assert mask.shape == (2, 1, 1, 7) and mask.dtype == torch.bool
    if core == "numpy":
        output, weights = npa.attention(q, k, v, mask=mask.numpy())
    else:
        output, weights = (t.numpy() for t in tha.attention(*(torch.from_numpy(x) for x in (q, k, v)), mask=mask))
    assert (weights[0, ..., 5:] == 0).all() and (weights[1, ..., 3:] == 0).all()
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=0, atol=1e-13)
    # Same as attending over the real keys only.
    short_out, short_w = npa.attention(q[1:], k[1:, :, :3], v[1:, :, :3])
    np.testing.assert_allclose(weights[1:, ..., :3], short_w, rtol=0, atol=1e-13)
    np.testing.assert_allclose(output[1:], short_out, rtol=0, atol=1e-13)


@pytest.mark.parametrize("core", ["numpy", "torch"])
def test_causal_mask_zeroes_the_upper_triangle(core):
    q, k, v = _rng_qkv(7, tq=6, tk=6)
    mask = causal_mask(6)  # (1, 1, T, T)
    assert mask.shape == (1, 1, 6, 6)
    assert torch.equal(mask[0, 0], torch.tensor(np.tril(np.ones((6, 6)))).bool())
    if core == "numpy":
        _, weights = npa.attention(q, k, v, mask=mask.numpy())
    else:
        _, weights = tha.attention(*(torch.from_numpy(x) for x in (q, k, v)), mask=mask)
        weights = weights.numpy()
    upper = np.triu(np.ones((6, 6), dtype=bool), k=1)
    assert (weights[..., upper] == 0).all()
    assert weights[..., 0, 0] == pytest.approx(1.0)  # the first query sees only itself
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=0, atol=1e-13)


def test_decoder_mask_is_causal_and_padding():
    is_real = torch.tensor([[1, 1, 1, 0]])  # (B, T)
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]]).bool()
    assert torch.equal(decoder_mask(is_real)[0, 0], expected)


@pytest.mark.parametrize("core", ["numpy", "torch"])
def test_fully_masked_row_gives_zeros_not_nan(core):
    q, k, v = _rng_qkv(8, batch=1, heads=1, tq=3, tk=4)
    mask = np.ones((1, 1, 3, 4), dtype=bool)
    mask[0, 0, 1] = False  # query 1 may attend nothing
    if core == "numpy":
        output, weights = npa.attention(q, k, v, mask=mask)
    else:
        output, weights = (
            t.numpy() for t in tha.attention(*(torch.from_numpy(x) for x in (q, k, v)), mask=torch.from_numpy(mask))
        )
    assert not np.isnan(weights).any() and not np.isnan(output).any()
    assert (weights[0, 0, 1] == 0).all() and (output[0, 0, 1] == 0).all()
    np.testing.assert_allclose(weights[0, 0, [0, 2]].sum(-1), 1.0, rtol=0, atol=1e-13)


def test_numpy_softmax_of_all_minus_infinity_is_zero():
    row = np.array([[-np.inf, -np.inf], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(npa.softmax(row), [[0.0, 0.0], [0.25, 0.75]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("core", ["numpy", "torch"])
def test_scale_one_and_additive_bias(core):
    # T5-style: no 1/√d, plus a bias. By hand: scores = q·kᵀ + b = [2 + 0, 0 + ln 3] → weights [e², 3]/(e² + 3).
    q = np.array([[1.0, 1.0]])  # (Tq=1, d=2)
    k = np.array([[2.0, 0.0], [0.0, 0.0]])  # (Tk=2, d=2)
    v = np.array([[1.0], [0.0]])  # (Tk, d_v=1)
    bias = np.array([[0.0, math.log(3.0)]])  # (Tq, Tk)
    if core == "numpy":
        output, weights = npa.attention(q, k, v, bias=bias, scale=1.0)
    else:
        output, weights = (
            t.numpy()
            for t in tha.attention(*(torch.from_numpy(x) for x in (q, k, v)), bias=torch.from_numpy(bias), scale=1.0)
        )
    e2 = math.exp(2.0)
    np.testing.assert_allclose(weights, [[e2 / (e2 + 3), 3 / (e2 + 3)]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(output, [[e2 / (e2 + 3)]], rtol=0, atol=1e-15)
    # With the default scale the result differs: scale is really applied.
    _, default_weights = npa.attention(q, k, v, bias=bias)
    assert abs(default_weights[0, 0] - weights[0, 0]) > 0.05


# --- heads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [npa, tha], ids=["numpy", "torch"])
def test_split_and_merge_heads(module):
    x = np.arange(2 * 3 * 8, dtype=np.float64).reshape(2, 3, 8)  # (B, T, H·d) with H=4, d=2
    if module is tha:
        x = torch.from_numpy(x)
    heads = module.split_heads(x, 4)  # (B, H, T, d)
    assert tuple(heads.shape) == (2, 4, 3, 2)
    # Head h holds columns h·d … h·d + d - 1 of every token.
    for h in range(4):
        assert np.array_equal(np.asarray(heads[:, h]), np.asarray(x[:, :, 2 * h : 2 * h + 2]))
    merged = module.merge_heads(heads)
    assert np.array_equal(np.asarray(merged), np.asarray(x))
    with pytest.raises(ValueError, match="not divisible"):
        module.split_heads(x, 3)


def test_multi_head_attention_equals_per_head_attention():
    torch.manual_seed(0)
    d_model, heads = 8, 2
    w_q, w_k, w_v = (torch.nn.Linear(d_model, d_model).double() for _ in range(3))
    x = torch.randn(1, 5, d_model, dtype=torch.float64)  # (B, T, D)
    output, weights = tha.multi_head_attention(x, x, w_q, w_k, w_v, heads)
    assert weights.shape == (1, 2, 5, 5) and output.shape == (1, 5, 8)
    with torch.no_grad():
        for h in range(heads):
            cols = slice(4 * h, 4 * h + 4)
            q, k, v = w_q(x)[..., cols], w_k(x)[..., cols], w_v(x)[..., cols]  # (B, T, d)
            expected = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # √4 = 2
            torch.testing.assert_close(weights[:, h], expected, rtol=0, atol=1e-13)
            torch.testing.assert_close(output[..., cols], expected @ v, rtol=0, atol=1e-13)


# --- the tutorial function and the fast path ----------------------------------------------------

# fast_attention scales q before the product, attention scales q·kᵀ after it: in float64 each score
# then rounds differently by a few ulps (scores here are below 10: ~1e-15), and the softmax and ·v pass
# that on without growing it by more than a small factor; 1e-12 leaves a thousandfold margin.
REORDERED_SCALE_TOLERANCE = 1e-12
FAST_CASES = ("plain", "scale", "mask", "bias and softcap", "row without keys", "mask with more axes")


@pytest.mark.parametrize("case", FAST_CASES)
def test_fast_attention_gives_the_tutorial_numbers(case):
    q, k, v = (torch.from_numpy(x) for x in _rng_qkv(9))  # (B, H, Tq, d_k), (B, H, Tk, d_k), (B, H, Tk, d_v)
    rng = np.random.default_rng(10)
    options = {}
    if case == "scale":
        options["scale"] = 0.3
    if case in ("mask", "row without keys"):
        mask = torch.from_numpy(rng.random((2, 1, 5, 7)) > 0.3)  # (B, 1, Tq, Tk)
        if case == "row without keys":
            mask[0, :, 2] = False
        options["mask"] = mask
    if case == "bias and softcap":
        options["bias"] = torch.from_numpy(rng.normal(size=(1, 3, 5, 7)))  # (1, H, Tq, Tk)
        options["softcap"] = 2.0
    if case == "mask with more axes":
        options["mask"] = torch.from_numpy(rng.random((4, 2, 1, 5, 7)) > 0.3)  # (N, B, 1, Tq, Tk)
    output, weights = tha.attention(q, k, v, **options)
    fast_output, fast_weights = tha.fast_attention(q, k, v, **options)
    assert fast_weights.shape == weights.shape and fast_output.shape == output.shape
    torch.testing.assert_close(fast_weights, weights, rtol=0, atol=REORDERED_SCALE_TOLERANCE)
    torch.testing.assert_close(fast_output, output, rtol=0, atol=REORDERED_SCALE_TOLERANCE)
    assert not weights.isnan().any()
    _, weights_only = tha.fast_attention(q, k, None, **options)  # v None: the weights alone
    assert torch.equal(weights_only, fast_weights)


# --- shape errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes, words",
    [
        (((1, 3), (2, 2), (2, 2)), ["query", "key", "3", "2"]),
        (((1, 3), (2, 3), (3, 2)), ["key", "value", "2", "3"]),
        (((3,), (2, 3), (2, 2)), ["query", "matrix"]),
        (((1, 3), (0, 3), (0, 2)), ["key", "empty"]),
    ],
)
@pytest.mark.parametrize("core", ["numpy", "torch"])
def test_bad_shapes_raise_one_line_shape_errors(core, shapes, words):
    arrays = [np.ones(s) for s in shapes]
    if core == "torch":
        arrays = [torch.from_numpy(a) for a in arrays]
    module = npa if core == "numpy" else tha
    with pytest.raises(ShapeError) as caught:
        module.attention(*arrays)
    message = str(caught.value)
    assert "\n" not in message and message
    for word in words:
        assert word in message
    assert isinstance(caught.value, ValueError)


# --- T5 relative position buckets ----------------------------------------------------------------


def _t5_bucket(relative: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """One bucket, straight from the T5 paper's scheme (Raffel et al. 2020, §2.1; Mesh TensorFlow).

    relative = key position − query position. Bidirectional: half of the buckets for keys on the
    right. Of the buckets per direction, half hold the exact distances 0 … n/2 − 1, the other half
    cover n/2 … max_distance on a log scale; everything farther shares the last bucket.
    """
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        bucket = num_buckets if relative > 0 else 0
        distance = abs(relative)
    else:
        distance = max(-relative, 0)
    exact = num_buckets // 2
    if distance < exact:
        return bucket + distance
    far = exact + int(math.log(distance / exact) / math.log(max_distance / exact) * (num_buckets - exact))
    return bucket + min(far, num_buckets - 1)


# (relative position, bucket) worked by hand for num_buckets=32, max_distance=128.
# Bidirectional: 16 buckets per side, exact below 8; −20 → 8 + ⌊ln(20/8)/ln(16)·8⌋ = 8 + ⌊2.64⌋ = 10.
BIDIRECTIONAL_BY_HAND = [
    (0, 0),
    (1, 17),
    (-1, 1),
    (-7, 7),
    (7, 23),
    (-20, 10),
    (20, 26),
    (-50, 13),
    (-100, 15),
    (-128, 15),
    (-5000, 15),
    (5000, 31),
]
# Unidirectional: keys on the right all share bucket 0; exact below 16; −20 → 16 + ⌊ln(20/16)/ln(8)·16⌋ = 17.
UNIDIRECTIONAL_BY_HAND = [(0, 0), (5, 0), (-1, 1), (-15, 15), (-20, 17), (-50, 24), (-100, 30), (-5000, 31)]


def _bucket_at(relative: int, bidirectional: bool, num_buckets=32, max_distance=128) -> int:
    """Read one bucket off the core's (Tq, Tk) table: query at 0 and key at `relative`, or the reverse."""
    from attn_demos.core.position_bias import relative_position_buckets

    if relative >= 0:  # query 0, keys 0 … relative
        return int(relative_position_buckets(1, relative + 1, bidirectional, num_buckets, max_distance)[0, -1])
    return int(relative_position_buckets(1 - relative, 1, bidirectional, num_buckets, max_distance)[-1, 0])


@pytest.mark.parametrize("relative, bucket", BIDIRECTIONAL_BY_HAND)
def test_t5_bidirectional_buckets_by_hand(relative, bucket):
    assert _t5_bucket(relative, True, 32, 128) == bucket
    assert _bucket_at(relative, True) == bucket


@pytest.mark.parametrize("relative, bucket", UNIDIRECTIONAL_BY_HAND)
def test_t5_unidirectional_buckets_by_hand(relative, bucket):
    assert _t5_bucket(relative, False, 32, 128) == bucket
    assert _bucket_at(relative, False) == bucket


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (8, 20), (16, 64)])
def test_t5_buckets_match_the_definition_and_transformers(bidirectional, num_buckets, max_distance):
    from transformers.models.t5.modeling_t5 import T5Attention

    from attn_demos.core.position_bias import relative_position_buckets

    length = 300  # distances up to 299 on both sides, past every max_distance here
    ours = relative_position_buckets(length, length, bidirectional, num_buckets, max_distance)  # (T, T)
    relative = torch.arange(length)[None, :] - torch.arange(length)[:, None]  # (T, T)
    theirs = T5Attention._relative_position_bucket(relative, bidirectional, num_buckets, max_distance)
    assert torch.equal(ours, theirs)
    by_relative = {r: _t5_bucket(r, bidirectional, num_buckets, max_distance) for r in range(1 - length, length)}
    by_definition = torch.tensor([[by_relative[int(r)] for r in row] for row in relative])
    assert torch.equal(ours, by_definition)
    assert int(ours.max()) == num_buckets - 1 and int(ours.min()) == 0


def test_t5_relative_position_bias_looks_up_each_head():
    from attn_demos.core.position_bias import relative_position_bias

    table = torch.arange(12.0).reshape(6, 2)  # (num_buckets, H): bucket b, head h -> 2b + h
    buckets = torch.tensor([[0, 1, 5], [2, 0, 3]])  # (Tq, Tk)
    bias = relative_position_bias(table, buckets)  # (1, H, Tq, Tk)
    assert bias.shape == (1, 2, 2, 3)
    assert torch.equal(bias[0, 0], 2.0 * buckets) and torch.equal(bias[0, 1], 2.0 * buckets + 1)
