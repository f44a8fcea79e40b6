"""The core's attention fused into one kernel that checks an output instead of storing weights.

For each block of query rows of one (example, head), softmax(softcap(q·kᵀ·scale) + bias, masked)·v
is accumulated one block of keys at a time (online softmax, in float32), then compared at once
with the output the model computed for those rows. Nothing of size Tq×Tk is written to memory:
what comes back is, per (example, head), max |recomputed output − output| and max |output| over the real
query rows. Same formula and conventions as torch_attention.attention (mask True = may attend; a
row with no key allowed gives zeros; window: query i, the last Tq of Tk positions,
sees the `window` latest keys up to itself, as masks.sliding_window_mask).

Precision: in half precision q·kᵀ multiplies q's own values exactly and accumulates in float32
(tensor cores); in float32 it takes three TF32 products, about float32's accuracy. The softmax is
float32. In half precision ·v gets the probabilities rounded to v's dtype (as flash attention does),
which moves the recomputed output by at most half an ulp of that dtype relative to max |v| (plus, in
float16, Tk·2⁻²⁵ × max |v| from probabilities below its normal range): 8 times less than the
tolerance (precision.tolerance_for).

Written in Triton and launched through its public API (`kernel[grid](...)`): it runs on CUDA GPUs
when the `triton` package is importable, and on the CPU under TRITON_INTERPRET=1 (slowly: that is
how the tests check it without a GPU).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import NamedTuple

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU machines without triton: callers use the torch path
    triton = None

# Launch configurations, (query rows per program, keys per step, warps, pipeline stages), from
# scripts/kernel_sweep.py on an H200 (bfloat16, 12 heads of 64): with a key mask, LONG_CONFIG was the
# fastest at 512 tokens; with every key allowed (no mask: the fast path), SHORT_CONFIG at 512 and 197.
LONG_CONFIG = (128, 64, 8, 2)
SHORT_CONFIG = (64, 64, 4, 3)
LONG_QUERIES = 256  # from this many query rows on, masked attention takes LONG_CONFIG
LONG_HEAD_DIM = 64  # ... for heads up to this size (larger heads: SHORT_CONFIG's smaller blocks fit on chip)
CONFIG: tuple[int, int, int, int] | None = None  # set to force one configuration (the sweep does)
MIN_DOT_SIZE = 16  # tl.dot needs every side of a block to be at least 16
FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# triton picks interpreter or compiler when a kernel is defined (at this module's import), so the
# setting is read once then too: os.environ costs µs a call, and the checks run once per layer
INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


class KernelLimitError(ValueError):
    """Inputs the kernel cannot index (beyond 32-bit offsets): check them another way."""


def fused_check_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the fused check is the fast path for tensors of this device and dtype: a CUDA GPU
    with triton. (fused_check also runs on the CPU under TRITON_INTERPRET=1, for tests.)"""
    return triton is not None and dtype in FUSED_DTYPES and device.type == "cuda"


def interpreting() -> bool:
    """Triton's CPU interpreter is on (its half-precision tl.dot is wrong, so dots run in float32 there)."""
    return INTERPRETING


def fused_check(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    output: torch.Tensor,
    scale: float,
    bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    softcap: float | None = None,
    window: int | None = None,
    query_is_real: torch.Tensor | None = None,
    maxima: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(deviation, magnitude), each (B, H) float32 on q's device, without a sync:
    max |softmax(…)·v − output| and max |output| per example and head over real query rows.

    q: (B, H, Tq, d), k: (B, H, Tk, d), v: (B, H, Tk, d_v), one dtype; output: (B, Tq, H·d_v), the
    heads merged as the model merges them; bias: additive, broadcastable to (B, H, Tq, Tk); mask:
    bool, broadcastable likewise; query_is_real: (B, Tq) bool or None (all real); maxima: a zeroed
    (2, B, H) int32 tensor on q's device that the results are written into (callers checking many
    layers zero them all at once: each allocation here costs the host a fill kernel's launch), None:
    allocated here. A NaN in the comparison makes that (example, head)'s deviation NaN.
    """
    batch, heads, q_len, head_dim = q.shape
    k_len, v_dim = k.shape[2], v.shape[3]
    if k.shape != (batch, heads, k_len, head_dim) or v.shape[:3] != (batch, heads, k_len):
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not fit together")
    if output.shape != (batch, q_len, heads * v_dim):
        raise ValueError(f"output {tuple(output.shape)} is not (B, Tq, H·d_v) = {(batch, q_len, heads * v_dim)}")
    runnable = fused_check_available(q.device, q.dtype) or (triton is not None and INTERPRETING)
    if not runnable or q.dtype not in FUSED_DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"fused_check cannot run on {q.device} in {q.dtype} (needs triton, and CUDA or TRITON_INTERPRET=1)")
    if window is not None and window < 1:
        raise ValueError(f"a sliding window needs at least one key, got {window}")
    full = (batch, heads, q_len, k_len)
    if bias is not None:
        bias = bias.expand(full)  # (B, H, Tq, Tk), no copy
    if mask is not None:
        mask = mask.bool()  # 1/0 flags of any dtype; a view when already bool
    if query_is_real is not None:
        query_is_real = query_is_real.bool().expand(batch, q_len)  # (B, Tq)
    if not fits_int32(q, k, v, output, bias, mask):
        raise KernelLimitError("fused_check indexes with 32-bit offsets: an operand spans 2³¹ elements or more")
    keys_only = mask is not None and mask.dim() == 4 and mask.shape[2] == 1  # key padding: (B, 1|H, 1, Tk)
    # Absent terms are never read: q stands in for their pointers, with zero strides.
    bias_view = bias if bias is not None else q  # (B, H, Tq, Tk)
    mask_view = mask.view(torch.uint8).expand(full) if mask is not None else q  # (B, H, Tq, Tk), no copy
    rows = query_is_real.view(torch.uint8) if query_is_real is not None else q  # (B, Tq)
    plan = launch_plan(q_len, k_len, head_dim, v_dim, masked=mask is not None or window is not None)
    blocks = -(-q_len // plan.block_m)  # ceil: plain ints, as each layer's launch costs host time
    # max over blocks by atomic max on the bit patterns: for floats ≥ 0 (and NaN) their order as int32
    if maxima is None:
        maxima = torch.zeros(2, batch, heads, dtype=torch.int32, device=q.device)  # (2, B, H): deviation, magnitude
    elif maxima.shape != (2, batch, heads) or maxima.dtype != torch.int32 or maxima.device != q.device:
        raise ValueError(f"maxima must be int32 (2, B, H) = {(2, batch, heads)} on {q.device}, got {maxima.dtype} "
                         f"{tuple(maxima.shape)} on {maxima.device}")
    # triton launches on the current CUDA device: make it the tensors' own
    with torch.cuda.device(q.device) if q.device.type == "cuda" else nullcontext():
        _check_kernel[(blocks, batch * heads)](
            q, k, v, output, bias_view, mask_view, rows, maxima,
            *q.stride(), *k.stride(), *v.stride(), *output.stride(),
            *(bias_view.stride() if bias is not None else (0, 0, 0, 0)),
            *(mask_view.stride() if mask is not None else (0, 0, 0, 0)),
            *(rows.stride() if query_is_real is not None else (0, 0)),
            heads, q_len, k_len, head_dim, v_dim, batch * heads,
            float(scale), float(softcap or 1.0), int(window or 0),
            HAS_BIAS=bias is not None, HAS_MASK=mask is not None, KEYS_ONLY=keys_only,
            HAS_ROWS=query_is_real is not None, HAS_SOFTCAP=softcap is not None, HAS_WINDOW=window is not None,
            EVEN=plan.even, FILTER=plan.filtered, HALF=q.dtype != torch.float32, UPCAST=INTERPRETING,
            BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_D=plan.block_d, BLOCK_DV=plan.block_dv,
            num_warps=plan.warps, num_stages=plan.stages,
        )
    as_floats = maxima.view(torch.float32)  # (2, B, H)
    deviation, magnitude = as_floats[0], as_floats[1]  # (B, H) each
    return deviation, magnitude


class LaunchPlan(NamedTuple):
    """Block sizes and launch settings of one call; even: every block lies inside the operands."""

    block_m: int  # query rows per program
    block_n: int  # keys per step
    block_d: int  # q and k columns, a power of two ≥ MIN_DOT_SIZE
    block_dv: int  # v columns, likewise
    warps: int
    stages: int
    even: bool  # no bounds to check: the kernel loads without masks
    filtered: bool  # some score may be masked out (a mask, a window, or keys past the end): the kernel filters


def launch_plan(q_len: int, k_len: int, head_dim: int, v_dim: int, masked: bool) -> LaunchPlan:
    """The configuration for these lengths (CONFIG if set, else LONG_CONFIG or SHORT_CONFIG);
    masked: a mask or a window is given."""
    block_d = max(MIN_DOT_SIZE, power_of_two_at_least(head_dim))
    block_dv = max(MIN_DOT_SIZE, power_of_two_at_least(v_dim))
    long = masked and q_len >= LONG_QUERIES and block_d <= LONG_HEAD_DIM
    block_m, block_n, warps, stages = CONFIG or (LONG_CONFIG if long else SHORT_CONFIG)
    even = q_len % block_m == 0 and k_len % block_n == 0 and head_dim == block_d and v_dim == block_dv
    return LaunchPlan(block_m, block_n, block_d, block_dv, warps, stages, even, filtered=masked or not even)


def power_of_two_at_least(n: int) -> int:
    """The smallest power of two ≥ n (n ≥ 1), in plain Python: triton.next_power_of_2 costs microseconds a call."""
    return 1 << (n - 1).bit_length()


def fits_int32(*tensors: torch.Tensor | None) -> bool:
    """Whether each tensor's storage (which every view or broadcast of it indexes into) holds
    fewer than 2³¹ elements: the kernel's offsets are 32-bit."""
    return all(t is None or t.untyped_storage().nbytes() < 2**31 * t.element_size() for t in tensors)


if triton is not None:

    @triton.jit
    def _dot(a, b, HALF: tl.constexpr, UPCAST: tl.constexpr):
        """a·b in float32: half precision on tensor cores, float32 as three TF32 products."""
        if UPCAST:
            product = tl.dot(a.to(tl.float32), b.to(tl.float32))
        elif HALF:
            product = tl.dot(a, b)
        else:
            product = tl.dot(a, b, input_precision="tf32x3")
        return product

    @triton.jit
    def _check_kernel(
        q_ptr, k_ptr, v_ptr, out_ptr, bias_ptr, mask_ptr, rows_ptr, maxima_ptr,
        sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sob, som, soc,
        sbb, sbh, sbm, sbn, smb, smh, smm, smn, srb, srm,
        heads, q_len, k_len, head_dim, v_dim, pairs,
        scale, softcap, window,
        HAS_BIAS: tl.constexpr, HAS_MASK: tl.constexpr, KEYS_ONLY: tl.constexpr, HAS_ROWS: tl.constexpr,
        HAS_SOFTCAP: tl.constexpr, HAS_WINDOW: tl.constexpr, EVEN: tl.constexpr, FILTER: tl.constexpr,
        HALF: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        BLOCK_DV: tl.constexpr,
    ):
        log2e: tl.constexpr = 1.4426950408889634  # exp(x) = 2^(x·log2 e): scores are kept in base 2
        BIAS_FLOOR: tl.constexpr = -1e30  # × log2e stays finite: a bias-only mask averages, as the core does
        block = tl.program_id(0)
        example = tl.program_id(1) // heads
        head = tl.program_id(1) % heads
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)  # (M,)
        dims = tl.arange(0, BLOCK_D)  # (D,)
        v_dims = tl.arange(0, BLOCK_DV)  # (Dv,)
        row_ok = rows < q_len
        q_ptrs = q_ptr + example * sqb + head * sqh + rows[:, None] * sqm + dims[None, :] * sqd
        if EVEN:  # EVEN: every block lies inside the operands, so loads need no bounds
            q = tl.load(q_ptrs)  # (M, D)
        else:
            q = tl.load(q_ptrs, mask=row_ok[:, None] & (dims[None, :] < head_dim), other=0.0)  # (M, D)
        running_max = tl.full([BLOCK_M], float("-inf"), tl.float32)  # (M,), base 2
        running_sum = tl.zeros([BLOCK_M], tl.float32)  # (M,)
        acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)  # (M, Dv): Σ 2^(score − max)·v
        for start in range(0, k_len, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)  # (N,)
            col_ok = cols < k_len
            k_ptrs = k_ptr + example * skb + head * skh + cols[None, :] * skn + dims[:, None] * skd
            if EVEN:
                k_t = tl.load(k_ptrs)  # (D, N): kᵀ
            else:
                k_t = tl.load(k_ptrs, mask=col_ok[None, :] & (dims[:, None] < head_dim), other=0.0)  # (D, N)
            if HAS_SOFTCAP:  # softcap·tanh(s/softcap), tanh(x) = 1 − 2/(e^{2x} + 1)
                scores = _dot(q, k_t, HALF, UPCAST) * scale  # (M, N) float32
                scores = softcap * (1.0 - 2.0 / (tl.exp(2.0 * scores / softcap) + 1.0)) * log2e
            else:
                scores = _dot(q, k_t, HALF, UPCAST) * (scale * log2e)  # (M, N) float32, base 2
            inside = row_ok[:, None] & col_ok[None, :]  # (M, N)
            if HAS_BIAS:
                bias = tl.load(
                    bias_ptr + example * sbb + head * sbh + rows[:, None] * sbm + cols[None, :] * sbn,
                    mask=inside, other=0.0,
                ).to(tl.float32)  # (M, N)
                scores += tl.maximum(bias, BIAS_FLOOR) * log2e  # a float32-min bias stays finite in base 2
            if FILTER:  # FILTER: some key may be out of bounds, masked or outside the window
                allowed = inside
                if HAS_MASK:
                    if KEYS_ONLY:  # one flag per key, the same for every row
                        key_flags = tl.load(mask_ptr + example * smb + head * smh + cols * smn, mask=col_ok, other=0)  # (N,)
                        allowed = allowed & (key_flags[None, :] != 0)
                    else:
                        allowed = allowed & (tl.load(
                            mask_ptr + example * smb + head * smh + rows[:, None] * smm + cols[None, :] * smn,
                            mask=inside, other=0,
                        ) != 0)
                if HAS_WINDOW:  # query row i is position i + Tk − Tq; it sees the `window` latest keys up to itself
                    distance = rows[:, None] + (k_len - q_len) - cols[None, :]  # (M, N)
                    allowed = allowed & (distance >= 0) & (distance < window)
                scores = tl.where(allowed, scores, float("-inf"))
            new_max = tl.maximum(running_max, tl.max(scores, 1))  # (M,)
            shift = tl.where(new_max == float("-inf"), 0.0, new_max)  # (M,); rows with no key yet: 2^(−inf) = 0
            probabilities = tl.exp2(scores - shift[:, None])  # (M, N), unnormalised
            rescale = tl.exp2(running_max - shift)  # (M,)
            running_sum = running_sum * rescale + tl.sum(probabilities, 1)
            v_ptrs = v_ptr + example * svb + head * svh + cols[:, None] * svn + v_dims[None, :] * svd
            if EVEN:
                v = tl.load(v_ptrs)  # (N, Dv)
            else:
                v = tl.load(v_ptrs, mask=col_ok[:, None] & (v_dims[None, :] < v_dim), other=0.0)  # (N, Dv)
            if HALF:  # the probabilities rounded to v's dtype (see the module's docstring)
                weighted = _dot(probabilities.to(v.dtype), v, HALF, UPCAST)  # (M, Dv) float32
            else:
                weighted = _dot(probabilities, v, HALF, UPCAST)  # (M, Dv)
            acc = acc * rescale[:, None] + weighted
            running_max = new_max
        recomputed_output = acc / tl.where(running_sum == 0.0, 1.0, running_sum)[:, None]  # (M, Dv); no key: 0
        real = row_ok
        if HAS_ROWS:
            real = real & (tl.load(rows_ptr + example * srb + rows * srm, mask=row_ok, other=0) != 0)
        keep = real[:, None] & (v_dims[None, :] < v_dim)  # (M, Dv)
        given = tl.load(
            out_ptr + example * sob + rows[:, None] * som + (head * v_dim + v_dims[None, :]) * soc,
            mask=keep, other=0.0,
        ).to(tl.float32)  # (M, Dv)
        difference = tl.where(keep, tl.abs(recomputed_output - given), 0.0)  # (M, Dv)
        is_nan = difference != difference  # (M, Dv)
        largest = tl.max(tl.max(tl.where(is_nan, 0.0, difference), 1), 0)
        has_nan = tl.sum(tl.sum(is_nan.to(tl.int32), 1), 0) > 0
        deviation = tl.where(has_nan, float("nan"), largest)
        magnitude = tl.max(tl.max(tl.where(keep & (given == given), tl.abs(given), 0.0), 1), 0)
        pair = example * heads + head
        tl.atomic_max(maxima_ptr + pair, deviation.to(tl.int32, bitcast=True))
        tl.atomic_max(maxima_ptr + pairs + pair, magnitude.to(tl.int32, bitcast=True))
