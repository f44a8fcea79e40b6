"""Where the task functions run, and which attention implementation the tabs use there.

Spaces: ZeroGPU attaches a GPU only while a function decorated with `spaces.GPU` runs. The `spaces`
package exists on Spaces (and is imported only if present); elsewhere, and on Spaces without
ZeroGPU, `spaces.GPU` leaves the function as it is, and so does `on_gpu` when it is missing.

Attention implementation (`tab_attn_implementation`, the one rule): $ATTN_DEMOS_ATTN_IMPLEMENTATION
(`launch --attn-implementation`) is auto, eager or sdpa; auto = sdpa when the model runs on cuda
(the fused kernel is the GPU's fast path) and eager elsewhere. With eager the tabs show the
library's weights (the reference) beside the recomputed ones; with sdpa the library returns no
weights, so the tabs show the core's recomputed weights, verified through the model's own output.
Two exceptions, whatever the setting:
- Text generation always runs eager: generate() returns each step's weights only on eager, and the
  tab shows those per-step weights (a teacher-forced sdpa pass would show a different computation
  from the one that chose each token).
- auto stays eager for a model whose sdpa output cannot be checked (ALBERT: no known output
  projection; Gemma2: the library has no sdpa kernel for its soft-capping).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable

from attn_demos.adapters.precision import EAGER, SDPA
from attn_demos.errors import AttnDemosError

GPU_SECONDS = 60  # the longest a task call may hold a ZeroGPU device (summaries of long articles)
ATTN_IMPLEMENTATION_ENV = "ATTN_DEMOS_ATTN_IMPLEMENTATION"
AUTO = "auto"  # sdpa on cuda, eager elsewhere (module doc)
ATTN_IMPLEMENTATION_CHOICES = (AUTO, EAGER, SDPA)
EAGER_TASKS = frozenset({"generate"})  # tasks that need the library's per-step weights (module doc)


class AttnImplementationError(AttnDemosError):
    """An attention implementation was asked for that the tabs do not know (CLI exit 2)."""


def on_gpu(function: Callable) -> Callable:
    """`function` wrapped by spaces.GPU(duration=GPU_SECONDS) when the spaces package is installed."""
    if importlib.util.find_spec("spaces") is None:
        return function
    import spaces

    return functools.wraps(function)(spaces.GPU(duration=GPU_SECONDS)(function))


def attn_implementation_choice(name: str | None = None) -> str:
    """`name`, else $ATTN_DEMOS_ATTN_IMPLEMENTATION, else auto; anything else is a one-line error."""
    choice = name or os.environ.get(ATTN_IMPLEMENTATION_ENV) or AUTO
    if choice not in ATTN_IMPLEMENTATION_CHOICES:
        raise AttnImplementationError(
            f"attention implementation must be one of {', '.join(ATTN_IMPLEMENTATION_CHOICES)}, got {choice!r}"
        )
    return choice


def tab_attn_implementation(device_type: str, task: str, choice: str | None = None, sdpa_checkable: bool = True) -> str:
    """"eager" or "sdpa": what a tab's model loads with on a device of `device_type` ("cpu", "cuda" …).

    choice: auto, eager or sdpa (None: attn_implementation_choice()). sdpa_checkable: whether the
    model's sdpa output can be verified (consulted by auto only). Rule and exceptions: module doc.
    """
    choice = attn_implementation_choice(choice)
    if task in EAGER_TASKS:
        return EAGER
    if choice == AUTO:
        return SDPA if device_type == "cuda" and sdpa_checkable else EAGER
    return choice
