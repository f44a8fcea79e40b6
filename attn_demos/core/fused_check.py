"""The core's attention fused into one kernel that checks an output instead of storing weights.

For each block of query rows of one (example, head), softmax(softcap(q·kᵀ·scale) + bias, masked)·v
is accumulated one block of keys at a time (online softmax, in float32), then compared at once
with the output the model computed for those rows. Nothing of size Tq×Tk is written to memory:
what comes back is, per (example, head), max |reproduced − output| and max |output| over the real
query rows. Same formula and conventions as torch_attention.attention (mask True = may attend; a
row with no key allowed gives zeros; window: query i, the last Tq of Tk positions,
sees the `window` latest keys up to itself, as masks.sliding_window_mask).

Precision: q·kᵀ multiplies q's own values exactly and accumulates in float32 (half precision:
tensor cores; float32: three TF32 products, about float32's accuracy). The probabilities stay
float32 until ·v, where half-precision v gets them as two half-precision parts (high + low, about
16 significant bits).

Written in Triton: it runs on CUDA GPUs when the `triton` package is importable, and on the CPU
under TRITON_INTERPRET=1 (slowly: that is how the tests check it without a GPU).
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU machines without triton: callers use the torch path
    triton = None

BLOCK_QUERIES = 64  # query rows per program
BLOCK_KEYS = 64  # keys per step of the online softmax
MIN_DOT_SIZE = 16  # tl.dot needs every side of a block to be at least 16
WARPS = 4
STAGES = 2
FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def fused_check_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the fused check is the fast path for tensors of this device and dtype: a CUDA GPU
    with triton. (fused_check also runs on the CPU under TRITON_INTERPRET=1, for tests.)"""
    return triton is not None and dtype in FUSED_DTYPES and device.type == "cuda"


def interpreting() -> bool:
    """Triton's CPU interpreter is on (its half-precision tl.dot is wrong, so dots run in float32 there)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """(deviation, magnitude), each (B, H) float32 on q's device, without a sync:
    max |softmax(…)·v − output| and max |output| per example and head over real query rows.

    q: (B, H, Tq, d), k: (B, H, Tk, d), v: (B, H, Tk, d_v), one dtype; output: (B, Tq, H·d_v), the
    heads merged as the model merges them; bias: additive, broadcastable to (B, H, Tq, Tk); mask:
    bool, broadcastable likewise; query_is_real: (B, Tq) bool or None (all real). A NaN in the
    comparison makes that (example, head)'s deviation NaN.
    """
    batch, heads, q_len, head_dim = q.shape
    k_len, v_dim = k.shape[2], v.shape[3]
    if k.shape != (batch, heads, k_len, head_dim) or v.shape[:3] != (batch, heads, k_len):
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not fit together")
    if output.shape != (batch, q_len, heads * v_dim):
        raise ValueError(f"output {tuple(output.shape)} is not (B, Tq, H·d_v) = {(batch, q_len, heads * v_dim)}")
    runnable = fused_check_available(q.device, q.dtype) or (triton is not None and interpreting())
    if not runnable or q.dtype not in FUSED_DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"fused_check cannot run on {q.device} in {q.dtype} (needs triton, and CUDA or TRITON_INTERPRET=1)")
    full = (batch, heads, q_len, k_len)
    bias_view = bias.expand(full) if bias is not None else q.new_zeros(1).expand(full)  # (B, H, Tq, Tk), no copy
    mask_view = (mask.view(torch.uint8) if mask is not None else q.new_ones(1, dtype=torch.uint8)).expand(full)
    rows = (query_is_real.view(torch.uint8) if query_is_real is not None else q.new_ones(1, dtype=torch.uint8))
    rows = rows.expand(batch, q_len)  # (B, Tq)
    blocks = triton.cdiv(q_len, BLOCK_QUERIES)
    deviation = torch.empty(batch, heads, blocks, dtype=torch.float32, device=q.device)  # (B, H, blocks)
    magnitude = torch.empty_like(deviation)  # (B, H, blocks)
    _check_kernel[(blocks, batch * heads)](
        q, k, v, output, bias_view, mask_view, rows, deviation, magnitude,
        *q.stride(), *k.stride(), *v.stride(), *output.stride(), *bias_view.stride(), *mask_view.stride(),
        *rows.stride(),
        heads, q_len, k_len, head_dim, v_dim, blocks,
        float(scale), float(softcap or 1.0), int(window or 0),
        HAS_BIAS=bias is not None,
        HAS_MASK=mask is not None,
        HAS_SOFTCAP=softcap is not None,
        HAS_WINDOW=window is not None,
        HALF=q.dtype != torch.float32,
        UPCAST=interpreting(),
        BLOCK_M=BLOCK_QUERIES,
        BLOCK_N=BLOCK_KEYS,
        BLOCK_D=max(MIN_DOT_SIZE, triton.next_power_of_2(head_dim)),
        BLOCK_DV=max(MIN_DOT_SIZE, triton.next_power_of_2(v_dim)),
        num_warps=WARPS,
        num_stages=STAGES,
    )
    return deviation.amax(dim=2), magnitude.amax(dim=2)  # (B, H), (B, H); amax keeps NaN


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
        q_ptr, k_ptr, v_ptr, out_ptr, bias_ptr, mask_ptr, rows_ptr, deviation_ptr, magnitude_ptr,
        sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd, sob, som, soc,
        sbb, sbh, sbm, sbn, smb, smh, smm, smn, srb, srm,
        heads, q_len, k_len, head_dim, v_dim, blocks,
        scale, softcap, window,
        HAS_BIAS: tl.constexpr, HAS_MASK: tl.constexpr, HAS_SOFTCAP: tl.constexpr, HAS_WINDOW: tl.constexpr,
        HALF: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
        BLOCK_DV: tl.constexpr,
    ):
        block = tl.program_id(0)
        example = tl.program_id(1) // heads
        head = tl.program_id(1) % heads
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)  # (M,)
        dims = tl.arange(0, BLOCK_D)  # (D,)
        v_dims = tl.arange(0, BLOCK_DV)  # (Dv,)
        row_ok = rows < q_len
        q = tl.load(
            q_ptr + example * sqb + head * sqh + rows[:, None] * sqm + dims[None, :] * sqd,
            mask=row_ok[:, None] & (dims[None, :] < head_dim), other=0.0,
        )  # (M, D)
        running_max = tl.full([BLOCK_M], float("-inf"), tl.float32)  # (M,)
        running_sum = tl.zeros([BLOCK_M], tl.float32)  # (M,)
        acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)  # (M, Dv): Σ exp(score − max)·v
        for start in range(0, k_len, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)  # (N,)
            col_ok = cols < k_len
            k_t = tl.load(
                k_ptr + example * skb + head * skh + cols[None, :] * skn + dims[:, None] * skd,
                mask=col_ok[None, :] & (dims[:, None] < head_dim), other=0.0,
            )  # (D, N): kᵀ
            scores = _dot(q, k_t, HALF, UPCAST) * scale  # (M, N) float32
            if HAS_SOFTCAP:  # softcap·tanh(s/softcap), tanh(x) = 1 − 2/(e^{2x} + 1)
                scores = softcap * (1.0 - 2.0 / (tl.exp(2.0 * scores / softcap) + 1.0))
            inside = row_ok[:, None] & col_ok[None, :]  # (M, N)
            if HAS_BIAS:
                scores += tl.load(
                    bias_ptr + example * sbb + head * sbh + rows[:, None] * sbm + cols[None, :] * sbn,
                    mask=inside, other=0.0,
                ).to(tl.float32)
            allowed = inside
            if HAS_MASK:
                allowed = allowed & (tl.load(
                    mask_ptr + example * smb + head * smh + rows[:, None] * smm + cols[None, :] * smn,
                    mask=inside, other=0,
                ) != 0)
            if HAS_WINDOW:  # query row i is position i + Tk − Tq; it sees the `window` latest keys up to itself
                distance = rows[:, None] + (k_len - q_len) - cols[None, :]  # (M, N)
                allowed = allowed & (distance >= 0) & (distance < window)
            scores = tl.where(allowed, scores, float("-inf"))
            new_max = tl.maximum(running_max, tl.max(scores, 1))  # (M,)
            shift = tl.where(new_max == float("-inf"), 0.0, new_max)  # rows with no key yet: exp(−inf) = 0
            probabilities = tl.exp(scores - shift[:, None])  # (M, N), unnormalised
            rescale = tl.exp(running_max - shift)  # (M,)
            running_sum = running_sum * rescale + tl.sum(probabilities, 1)
            v = tl.load(
                v_ptr + example * svb + head * svh + cols[:, None] * svn + v_dims[None, :] * svd,
                mask=col_ok[:, None] & (v_dims[None, :] < v_dim), other=0.0,
            )  # (N, Dv)
            if HALF:
                high = probabilities.to(v.dtype)
                low = (probabilities - high.to(tl.float32)).to(v.dtype)
                weighted = _dot(high, v, HALF, UPCAST) + _dot(low, v, HALF, UPCAST)  # (M, Dv) float32
            else:
                weighted = _dot(probabilities, v, HALF, UPCAST)  # (M, Dv)
            acc = acc * rescale[:, None] + weighted
            running_max = new_max
        reproduced = acc / tl.where(running_sum == 0.0, 1.0, running_sum)[:, None]  # (M, Dv); no key: 0
        real = row_ok
        real = real & (tl.load(rows_ptr + example * srb + rows * srm, mask=row_ok, other=0) != 0)
        keep = real[:, None] & (v_dims[None, :] < v_dim)  # (M, Dv)
        given = tl.load(
            out_ptr + example * sob + rows[:, None] * som + (head * v_dim + v_dims[None, :]) * soc,
            mask=keep, other=0.0,
        ).to(tl.float32)  # (M, Dv)
        difference = tl.where(keep, tl.abs(reproduced - given), 0.0)  # (M, Dv)
        is_nan = difference != difference
        largest = tl.max(tl.max(tl.where(is_nan, 0.0, difference), 1), 0)
        has_nan = tl.sum(tl.sum(is_nan.to(tl.int32), 1), 0) > 0
        slot = (example * heads + head) * blocks + block
        tl.store(deviation_ptr + slot, tl.where(has_nan, float("nan"), largest))
        tl.store(magnitude_ptr + slot, tl.max(tl.max(tl.where(keep & (given == given), tl.abs(given), 0.0), 1), 0))
