"""The fused check kernel (core/fused_check.py, Triton; on the CPU interpreter here) against the
core's attention in float64, and the sdpa verification run through it end to end."""

from __future__ import annotations

import math

import pytest
import torch
from test_precision import _swap_heads_0_1, _wrong_terms, loaded_model, verified

from attn_demos.adapters import verify
from attn_demos.adapters.precision import tolerance_for
from attn_demos.core import fused_check as fused
from attn_demos.core.masks import sliding_window_mask
from attn_demos.core.torch_attention import attention, merge_heads

pytestmark = pytest.mark.skipif(
    fused.triton is None or not fused.interpreting(),
    reason="needs triton's CPU interpreter (TRITON_INTERPRET=1, set by conftest without CUDA); on a GPU "
    "the compiled kernel is checked by tests/test_gpu.py",
)

BATCH, HEADS, Q_LEN, K_LEN, HEAD_DIM = 2, 3, 70, 90, 8  # lengths that are not multiples of a block
SCALE = 0.3
PERTURBATION = 0.25  # added to one output value: the kernel must report exactly this deviation there
CASES = ("plain", "padding", "bias", "softcap", "window", "window_fewer_queries", "row_without_keys", "strided",
         "even", "even_padding", "even_bias_softcap", "even_wide_v")
# (Tq, Tk, d) of the cases whose lengths and head size fill the interpreter's blocks exactly: the kernel
# then loads without bounds (and, with no mask, filters nothing): its fast path, as BERT at 512 tokens
EVEN_SHAPE = (128, 128, 16)
# even_bias_softcap: the fast path with terms that are not masks, fewer queries than keys and q strided
EVEN_FEWER_QUERIES = (64, 128, 16)
WIDE_V_DIM = 32  # even_wide_v: v wider than q and k (d_v ≠ d), both powers of two
FLOAT32_SLACK = 2e-6


def slack(dtype: torch.dtype, v: torch.Tensor) -> float:
    """How far the kernel's recomputed output may be from float64's: float32 rounding; in half
    precision, probabilities rounded to dtype move it by ≤ half an ulp × max |v|."""
    if dtype == torch.float32:
        return FLOAT32_SLACK
    return torch.finfo(dtype).eps / 2 * float(v.abs().max()) + FLOAT32_SLACK


def case_inputs(case: str, dtype: torch.dtype):
    """q, k, v (B, H, T, d) in dtype and the keyword arguments of one case."""
    generator = torch.Generator().manual_seed(CASES.index(case))
    k_len = Q_LEN if case == "window" else K_LEN  # window_fewer_queries: the last Tq of Tk positions
    q_len, head_dim = Q_LEN, HEAD_DIM
    if case.startswith("even"):
        q_len, k_len, head_dim = EVEN_FEWER_QUERIES if case == "even_bias_softcap" else EVEN_SHAPE
    q, k, v = (torch.randn(BATCH, HEADS, n, head_dim, generator=generator) for n in (q_len, k_len, k_len))
    if case == "even_wide_v":
        v = torch.randn(BATCH, HEADS, k_len, WIDE_V_DIM, generator=generator)  # (B, H, Tk, d_v)
    options = {}
    if case in ("padding", "even_padding"):  # 1/0 flags as a tokenizer gives them, not bools
        options["mask"] = (torch.rand(BATCH, 1, 1, k_len, generator=generator) > 0.3).long()  # (B, 1, 1, Tk)
        options["query_is_real"] = (torch.rand(BATCH, q_len, generator=generator) > 0.2).long()  # (B, Tq)
    if case == "bias":
        options["bias"] = torch.randn(1, HEADS, Q_LEN, k_len, generator=generator)  # (1, H, Tq, Tk)
    if case == "softcap":
        options["softcap"] = 2.0
    if case in ("window", "window_fewer_queries"):
        options["window"] = 5
    if case == "row_without_keys":
        mask = torch.ones(BATCH, 1, Q_LEN, k_len, dtype=torch.bool)  # (B, 1, Tq, Tk)
        mask[:, :, 3] = False
        options["mask"] = mask
    if case == "even_bias_softcap":  # an additive key-padding mask as a bias, with no boolean mask
        bias = torch.randn(BATCH, 1, 1, k_len, generator=generator)  # (B, 1, 1, Tk)
        bias[0, ..., -40:] = torch.finfo(torch.float32).min
        options["bias"] = bias
        options["softcap"] = 2.0
    if case in ("strided", "even_bias_softcap"):  # heads split from (B, T, H·d) as models do: not contiguous
        q = q.transpose(1, 2).contiguous().transpose(1, 2)
    return q.to(dtype), k.to(dtype), v.to(dtype), options


def float64_output(q, k, v, options) -> torch.Tensor:
    """(B, Tq, H·d_v): the core's torch attention in float64, heads merged."""
    mask = options.get("mask")
    mask = None if mask is None else mask.bool()
    if "window" in options:
        mask = sliding_window_mask(q.shape[2], k.shape[2], options["window"])  # (1, 1, Tq, Tk)
    bias = options.get("bias")
    output, _ = attention(
        q.double(), k.double(), v.double(), mask=mask, bias=None if bias is None else bias.double(),
        scale=SCALE, softcap=options.get("softcap"),
    )
    return merge_heads(output)


@pytest.mark.parametrize("dtype", fused.FUSED_DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES)
def test_fused_check_reports_the_deviation_from_the_float64_core(case, dtype):
    q, k, v, options = case_inputs(case, dtype)
    q_len, head_dim, v_dim = q.shape[2], q.shape[3], v.shape[3]
    plan = fused.launch_plan(q_len, k.shape[2], head_dim, v_dim, masked="mask" in options or "window" in options)
    assert plan.even == case.startswith("even")  # each case takes the path it is named for
    assert plan.filtered == (case not in ("even", "even_bias_softcap", "even_wide_v"))
    exact = float64_output(q, k, v, options)  # (B, Tq, H·d_v)
    given = exact.to(dtype).clone()  # what a model would return: the exact output, rounded
    given[1, 4, 2 * v_dim + 1] += PERTURBATION  # example 1, head 2 is off by 0.25 on one value
    real = options.get("query_is_real", torch.ones(BATCH, q_len, dtype=torch.bool)).bool()
    if not real[1, 4]:
        real[1, 4] = True
        options["query_is_real"] = real

    deviation, magnitude = fused.fused_check(q, k, v, given, SCALE, **options)

    difference = (exact - given.double()).abs().view(BATCH, q_len, HEADS, v_dim)  # (B, Tq, H, d_v)
    size = given.double().abs().view(BATCH, q_len, HEADS, v_dim)
    keep = real[:, :, None, None]
    expected_deviation = difference.where(keep, 0.0).amax(dim=(1, 3))  # (B, H)
    expected_magnitude = size.where(keep, 0.0).amax(dim=(1, 3))  # (B, H)
    assert deviation.shape == magnitude.shape == (BATCH, HEADS)
    allowed = slack(dtype, v)
    assert torch.allclose(deviation.double(), expected_deviation, rtol=0, atol=allowed), (deviation, expected_deviation)
    assert torch.equal(magnitude.double(), expected_magnitude)
    assert deviation[1, 2] > PERTURBATION / 2  # the control: the perturbed head is caught
    if case == "row_without_keys":  # a query with no key allowed reproduces zeros, as the core does
        assert float(exact[:, 3].abs().max()) == 0.0


def test_a_wrong_formula_is_caught():
    """Outputs of another scale (the tutorial's 1/√d instead of the model's 0.3) must deviate."""
    q, k, v, options = case_inputs("plain", torch.float32)
    other = merge_heads(attention(q, k, v, scale=1 / math.sqrt(HEAD_DIM))[0])  # (B, Tq, H·d)
    deviation, magnitude = fused.fused_check(q, k, v, other, SCALE)
    assert (deviation / magnitude.amax() > 1e-2).all()


def test_nan_on_a_real_row_is_reported_and_on_a_padded_row_ignored():
    q, k, v, _ = case_inputs("plain", torch.float32)
    given = float64_output(q, k, v, {}).float()
    real = torch.ones(BATCH, Q_LEN, dtype=torch.bool)
    real[0, 7] = False
    given[0, 7, 0] = float("nan")  # padded row, head 0
    given[1, 9, HEAD_DIM] = float("nan")  # real row, head 1
    deviation, _ = fused.fused_check(q, k, v, given, SCALE, query_is_real=real)
    assert torch.isnan(deviation[1, 1])
    assert not torch.isnan(deviation[0]).any() and float(deviation[0].max()) < 1e-5


def test_fused_check_refuses_shapes_that_do_not_fit():
    q, k, v, _ = case_inputs("plain", torch.float32)
    with pytest.raises(ValueError, match="output"):
        fused.fused_check(q, k, v, torch.zeros(BATCH, Q_LEN, HEADS * HEAD_DIM + 1), SCALE)
    with pytest.raises(ValueError, match="do not fit"):
        fused.fused_check(q, k[:, :2], v, torch.zeros(BATCH, Q_LEN, HEADS * HEAD_DIM), SCALE)


def test_results_go_into_a_given_zeroed_buffer():
    q, k, v, _ = case_inputs("plain", torch.float32)
    given = float64_output(q, k, v, {}).float()  # (B, Tq, H·d)
    given[1, 5, 2 * HEAD_DIM] += PERTURBATION  # example 1, head 2
    alone = fused.fused_check(q, k, v, given, SCALE)
    buffer = torch.zeros(2, BATCH, HEADS, dtype=torch.int32)  # (2, B, H)
    into = fused.fused_check(q, k, v, given, SCALE, maxima=buffer)
    assert all(torch.equal(a, b) for a, b in zip(alone, into))
    assert into[0].data_ptr() == buffer.data_ptr(), "the results were not written into the given buffer"
    assert float(into[0][1, 2]) == pytest.approx(PERTURBATION, abs=1e-5)
    for wrong in (torch.zeros(2, BATCH, HEADS + 1, dtype=torch.int32), torch.zeros(2, BATCH, HEADS)):
        with pytest.raises(ValueError, match="maxima must be int32"):
            fused.fused_check(q, k, v, given, SCALE, maxima=wrong)


def test_zeroed_maxima_hands_out_each_buffer_once():
    zeroed = verify.ZeroedMaxima(2)
    first, second = (zeroed.take(3, 4, torch.device("cpu")) for _ in range(2))
    assert first.shape == second.shape == (2, 3, 4) and first.dtype == torch.int32
    assert not first.any() and not second.any() and first.data_ptr() != second.data_ptr()
    assert zeroed.take(3, 4, torch.device("cpu")) is None, "a third site got a buffer already handed out"
    other = verify.ZeroedMaxima(2)
    other.take(3, 4, torch.device("cpu"))
    assert other.take(3, 5, torch.device("cpu")) is None, "a site with other heads got a buffer of the wrong shape"


def test_zeroed_maxima_start_every_buffer_on_a_16_byte_boundary():
    # triton specialises a pointer on 16-byte alignment: a misaligned buffer would compile the kernel a
    # second time; 2·B·H int32 = 24 bytes for B = 1, H = 3
    zeroed = verify.ZeroedMaxima(3)
    buffers = [zeroed.take(1, 3, torch.device("cpu")) for _ in range(3)]
    assert [b.data_ptr() % verify.ALIGNMENT for b in buffers] == [0, 0, 0]
    assert all(b.shape == (2, 1, 3) and b.is_contiguous() and not b.any() for b in buffers)
    ends = sorted((b.data_ptr(), b.data_ptr() + b.numel() * b.element_size()) for b in buffers)
    assert all(end <= start for (_, end), (start, _) in zip(ends, ends[1:])), "two buffers overlap"


def test_the_fast_path_is_a_cuda_gpu_only():
    assert not fused.fused_check_available(torch.device("cpu"), torch.float32)
    assert not fused.fused_check_available(torch.device("cuda"), torch.float64)


# The sdpa verification with every site checked by the kernel (forced here: on the CPU it is not
# the fast path) gives the torch path's errors, and still fails wrong weights.
END_TO_END = ("bert", "bart", "t5", "vit", "llama", "qwen3", "mistral", "phi3", "gpt2")


@pytest.fixture
def through_the_kernel(monkeypatch):
    """forward_with_verification checks every site not wanted by a view with fused_check."""
    calls = []
    original = fused.fused_check

    def counted(*args, **kwargs):
        calls.append(kwargs.get("maxima"))  # the zeroed result buffer the verification handed over
        return original(*args, **kwargs)

    monkeypatch.setattr(verify, "fused_check_available", lambda device, dtype: True)
    monkeypatch.setattr(verify, "fused_check", counted)
    return calls


@pytest.mark.parametrize("family", END_TO_END)
def test_sdpa_verification_through_the_kernel_equals_the_torch_path(checkpoints, through_the_kernel, family):
    loaded = loaded_model(checkpoints, family, implementation="sdpa")
    torch_path = verified(loaded).errors  # weights kept: every site goes the torch way
    assert not through_the_kernel
    kernel_path = verified(loaded, keep_weights=False).errors
    sites = len(loaded.family.sites(loaded.model))
    assert len(through_the_kernel) == sites
    # every site wrote into its own buffer of one block zeroed once for the pass
    assert len({buffer.untyped_storage().data_ptr() for buffer in through_the_kernel}) == 1
    assert len({buffer.data_ptr() for buffer in through_the_kernel}) == sites
    assert torch_path.keys() == kernel_path.keys()
    for kind in torch_path:
        assert torch.allclose(kernel_path[kind], torch_path[kind], rtol=0, atol=1e-6), kind
        assert float(kernel_path[kind].max()) <= tolerance_for("float32")


@pytest.mark.parametrize("family", ("bert", "t5", "llama"))
def test_swapped_heads_fail_through_the_kernel(checkpoints, through_the_kernel, monkeypatch, family):
    loaded = loaded_model(checkpoints, family, implementation="sdpa")
    _wrong_terms(monkeypatch, _swap_heads_0_1)
    for kind, errors in verified(loaded, keep_weights=False).errors.items():  # (B, L, H)
        worst = errors.amax(dim=0)  # (L, H)
        assert (worst[:, :2] > tolerance_for("float32")).all(), (kind, worst)
    assert through_the_kernel


def test_only_the_layer_a_view_wants_materialises_weights(checkpoints, through_the_kernel, site_forms):
    """KeepLayer(encoder, 1): that site's weights are built (torch path), every other site is
    checked by the kernel; the kept layer equals the one from a pass that keeps everything."""
    from test_precision import TEXTS, tokenize

    from attn_demos.adapters.reduce import KeepLayer, reduce_attention

    loaded = loaded_model(checkpoints, "bert", implementation="sdpa")
    inputs, source = tokenize(loaded, TEXTS)
    view = KeepLayer("encoder", 1)
    result = reduce_attention(loaded, inputs, source, [view])
    layers = loaded.config.num_hidden_layers
    built = [(site.layer, form) for site, form in site_forms]
    assert built == [(layer, verify.HEADS if layer == 1 else None) for layer in range(layers)]
    assert len(through_the_kernel) == layers - 1
    everything = verify.forward_with_verification(loaded, inputs, source)
    assert torch.equal(view.weights, everything.maps["encoder"].weights[:, 1])
    assert float(result.errors["encoder"].max()) <= tolerance_for("float32")
