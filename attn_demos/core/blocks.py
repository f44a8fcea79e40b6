"""The core's attention weights a block of query rows at a time, over only the keys that block may
attend: under a causal mask (or a sliding window) a block of early rows skips the later keys, whose
weights are zero by the formula (exp(−inf) = 0), so about half of q·kᵀ, the softmax and weights·v
is never computed. Same formula and conventions as torch_attention.fast_attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attn_demos.core.heads import soft_cap

QUERY_BLOCK = 128  # query rows per block where the keys they may attend differ by row (causal, window)


@dataclass(frozen=True)
class Block:
    """Query rows `rows` and the span `keys` of keys some row of them may attend."""

    rows: slice
    keys: slice
    # (B|1, 1|H, r|1, span − blocked_from) True where a score is masked out; None: none in the span is
    blocked: torch.Tensor | None = None
    blocked_from: int = 0  # the first column of the span with a masked score


@dataclass(frozen=True)
class Blocks:
    """How one mask splits the scores (B, H, Tq, Tk) into blocks."""

    blocks: tuple[Block, ...]
    q_len: int
    k_len: int
    rows_without_keys: bool = False  # some query row may attend no key: its weights are zeros (softmax would give NaN)

    @property
    def whole(self) -> bool:
        """One block of every row and every key."""
        (first, *rest) = self.blocks
        return not rest and first.rows == slice(0, self.q_len) and first.keys == slice(0, self.k_len)


def blocks_for(mask: torch.Tensor | None, q_len: int, k_len: int) -> Blocks:
    """The blocks of a boolean mask broadcastable to (B, H, Tq, Tk) (True = may attend; None: all):
    QUERY_BLOCK rows at a time where the keys the rows reach differ, consecutive blocks of one span
    merged. Built once per mask (a few small steps), shared by every layer that uses it."""
    if mask is None:
        return Blocks((Block(slice(0, q_len), slice(0, k_len)),), q_len, k_len)
    mask = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))  # (B|1, 1|H, Tq|1, Tk)
    reach = mask.flatten(0, -3).any(dim=0)  # (Tq|1, Tk): the keys some example's (and head's) row attends
    per_row = reach.shape[0] > 1
    starts = range(0, q_len, QUERY_BLOCK) if per_row else [0]
    spans: list[tuple[int, int, int]] = []  # (first row, first key, key past the last)
    for start in starts:
        seen = reach[start : start + QUERY_BLOCK].any(dim=0) if per_row else reach[0]  # (Tk,)
        found = seen.nonzero()  # (n, 1)
        span = (int(found[0]), int(found[-1]) + 1) if len(found) else (0, 0)
        if not spans or spans[-1][1:] != span:
            spans.append((start, *span))
    blocks = []
    for index, (start, first, past) in enumerate(spans):
        stop = spans[index + 1][0] if index + 1 < len(spans) else q_len
        rows = slice(start, stop)
        blocked = ~mask[..., rows if per_row else slice(None), first:past]  # (B|1, 1|H, r|1, span)
        columns = blocked.flatten(0, -2).any(dim=0).nonzero()  # (n, 1): columns with a masked score
        if len(columns):
            start_column = int(columns[0])
            blocks.append(Block(rows, slice(first, past), blocked[..., start_column:], start_column))
        else:
            blocks.append(Block(rows, slice(first, past)))
    rows_without_keys = not bool(mask.any(dim=-1).all())
    return Blocks(tuple(blocks), q_len, k_len, rows_without_keys)


def block_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    block: Block,
    heads: slice,
    bias: torch.Tensor | None = None,
    softcap: float | None = None,
    softmax_dtype: torch.dtype | None = None,
    rows_without_keys: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weights (B, h, r, span) of `heads` over one block: softmax(softcap(q·kᵀ) + bias, masked).

    q: (B, H, Tq, d) already multiplied by the scale (as fast_attention scales q before the
    product); k: (B, H, Tk, d); bias: additive, broadcastable to (B, H, Tq, Tk). The weights come
    back in q's dtype, written into `out` (B, h, r, span) when given (the softmax writes there
    itself when it runs in q's dtype: no copy); the softmax runs in softmax_dtype (None: q's).
    """
    keys = block.keys
    scores = q[:, heads, block.rows] @ k[:, heads, keys].transpose(-2, -1)  # (B, h, r, span)
    if softcap is not None:
        scores = soft_cap(scores, softcap)  # (B, h, r, span)
    if bias is not None:
        scores += _part(bias, heads, block.rows, keys)  # (B, h, r, span)
    if block.blocked is not None:
        blocked = block.blocked if block.blocked.shape[1] == 1 else block.blocked[:, heads]
        scores[..., block.blocked_from :].masked_fill_(blocked, float("-inf"))
    if out is not None and (softmax_dtype or scores.dtype) == out.dtype == q.dtype:
        weights = torch.softmax(scores, dim=-1, out=out)  # (B, h, r, span)
    else:
        weights = torch.softmax(scores, dim=-1, dtype=softmax_dtype).to(q.dtype)  # (B, h, r, span)
        weights = weights if out is None else out.copy_(weights)
    del scores
    if rows_without_keys:
        weights.nan_to_num_(0.0)  # rows with no allowed key: 0/0 becomes 0
    return weights


def zero_outside(full: torch.Tensor, blocks: Blocks) -> None:
    """Zero what no block computes in `full` (..., Tq, Tk): each block's rows before and after
    its span of keys (every key of a block whose rows attend none)."""
    for block in blocks.blocks:
        full[..., block.rows, : block.keys.start].zero_()
        full[..., block.rows, block.keys.stop :].zero_()


def _part(bias: torch.Tensor, heads: slice, rows: slice, keys: slice) -> torch.Tensor:
    """The slice of an additive bias broadcastable to (B, H, Tq, Tk) for heads × rows × keys."""
    bias = bias.reshape((1,) * (4 - bias.dim()) + tuple(bias.shape))  # (B|1, H|1, Tq|1, Tk|1)
    parts = [part if size > 1 else slice(None) for part, size in zip((heads, rows, keys), bias.shape[1:])]
    return bias[(slice(None), *parts)]


def blocks_of_heads(blocks: Blocks, batch: int, heads: int, budget_bytes: int, itemsize: int, fixed: int | None = None):
    """(block, heads slice) steps: per block, as many heads as `budget_bytes` of its scores hold
    (at least one; `fixed`: that many)."""
    steps = []
    for block in blocks.blocks:
        rows = block.rows.stop - block.rows.start
        span = block.keys.stop - block.keys.start
        if span == 0:
            continue  # no row of the block attends any key: its weights and output stay zero
        per_step = fixed or max(1, budget_bytes // max(1, batch * rows * span * itemsize))
        steps += [(block, slice(first, min(first + per_step, heads))) for first in range(0, heads, per_step)]
    return steps
