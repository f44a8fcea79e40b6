"""Launch a compiled Triton kernel without triton's per-call binding.

`kernel[grid](...)` binds every argument, works out what the kernel is specialised on and looks
the compiled kernel up, on every call: tens of µs of host time, paid once per checked layer, and
the bfloat16 forward is itself close to host-bound. Here the first launch with a given launch key
goes through triton (which compiles); the compiled kernel is then launched once more, directly,
into a copy of the written tensor as it was before, and the two results must be equal bit for
bit before that key launches directly from then on. If they differ, or the direct launch fails
(another triton's convention), every launch goes through triton again, with a warning.

The key holds all that triton may specialise a kernel on, and more finely: each tensor's dtype
and whether its address is a multiple of ALIGNMENT, every other argument's exact value, the
constexprs, warps, stages and device. So two calls with one key share one compiled kernel.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext

import torch

ALIGNMENT = 16  # bytes: triton specialises a pointer argument on whether its address is a multiple of this
CACHE_SIZE = 256  # launch keys kept (one per shape seen); beyond this the oldest is forgotten

log = logging.getLogger(__name__)


class DirectLauncher:
    """Launches `kernel` (a triton JIT function) directly once a launch key has been checked.

    constexpr_names: the kernel's constexpr parameters, in its signature's order, which close its
    parameter list; the others come first, tensors before scalars.
    """

    def __init__(self, kernel, constexpr_names: Sequence[str]):
        self.kernel = kernel
        self.constexpr_names = tuple(constexpr_names)
        self.compiled: dict[tuple, object] = {}  # launch key -> triton's compiled kernel, checked
        self.enabled = True  # False after a direct launch disagreed with triton's
        self.counts: Counter[str] = Counter()  # launches by path: "triton", "direct"
        self._lock = threading.Lock()

    def __call__(
        self,
        grid: tuple[int, int],
        arguments: tuple,
        settings: tuple,
        warps: int,
        stages: int,
        tensors: int,
        written: int,
        direct: bool = True,
    ) -> None:
        """Launch on `grid` with `arguments` (the first `tensors` of them tensors) and constexpr
        values `settings`, on the GPU that holds arguments[0]; arguments[written] is the tensor the
        kernel writes. direct=False: always through triton (e.g. its CPU interpreter)."""
        device = arguments[0].device
        # triton launches (and loads its compiled kernel) on the current CUDA device: make it the tensors'
        with torch.cuda.device(device) if on_other_gpu(device) else nullcontext():
            self._launch(grid, arguments, settings, warps, stages, tensors, written, direct)

    def _launch(self, grid, arguments, settings, warps, stages, tensors, written, direct) -> None:
        key = None
        if direct and self.enabled:
            key = launch_key(arguments, tensors, settings, warps, stages)
            compiled = self.compiled.get(key)
            if compiled is not None:
                compiled[(*grid, 1)](*arguments, *settings)
                self.counts["direct"] += 1
                return
        before = arguments[written].clone() if key is not None else None
        compiled = self.kernel[grid](
            *arguments, **dict(zip(self.constexpr_names, settings)), num_warps=warps, num_stages=stages
        )
        self.counts["triton"] += 1
        if key is not None:
            self._check_direct(key, compiled, grid, arguments, settings, written, before)

    def _check_direct(self, key, compiled, grid, arguments, settings, written: int, before: torch.Tensor) -> None:
        """Launch `compiled` directly into `before` (the written tensor as it was) and keep it for
        `key` if it wrote exactly what triton's launch wrote; otherwise stop launching directly."""
        trial = list(arguments)
        trial[written] = before
        try:
            compiled[(*grid, 1)](*trial, *settings)
            agrees = torch.equal(before, arguments[written])
        except Exception as failure:  # noqa: BLE001 (any triton version's launcher; triton's own path stays)
            agrees, reason = False, f"{type(failure).__name__}: {failure}"
        else:
            reason = "it wrote other values"
        if not agrees:
            self.enabled = False
            log.warning("launching the compiled kernel directly failed (%s); launching through triton from now on", reason)
            return
        with self._lock:
            if len(self.compiled) >= CACHE_SIZE:
                self.compiled.pop(next(iter(self.compiled)))
            self.compiled[key] = compiled


def on_other_gpu(device: torch.device) -> bool:
    """Whether `device` is a CUDA GPU other than the current one."""
    return device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device()


def launch_key(arguments: tuple, tensors: int, settings: tuple, warps: int, stages: int) -> tuple:
    """What a launch is specialised on, more finely than triton: see the module's docstring."""
    pointers = tuple((t.dtype, t.data_ptr() % ALIGNMENT == 0) for t in arguments[:tensors])
    return (arguments[0].device.index, warps, stages, settings, pointers, arguments[tensors:])
