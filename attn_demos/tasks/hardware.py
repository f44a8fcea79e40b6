"""Where the task functions run, and which attention implementation they use there.

Spaces: ZeroGPU attaches a GPU only while a function decorated with `spaces.GPU` runs. The `spaces`
package exists on Spaces (and is imported only if present); elsewhere, and on Spaces without
ZeroGPU, `spaces.GPU` leaves the function as it is, and so does `on_gpu` when it is missing.

Attention implementation (`attn_implementation_for`, the one rule for the tabs, `compare` and
`view`): the setting (`--attn-implementation`, $ATTN_DEMOS_ATTN_IMPLEMENTATION) is auto, eager or
sdpa; auto = sdpa when the model runs on cuda (the fused kernel is the GPU's fast path) and eager
elsewhere. With eager the library returns its weights, shown and compared beside the recomputed
ones; with sdpa it returns none, so the recomputed weights are verified through the model's own
output. Exceptions:
- Text generation always runs eager: generate() returns each step's weights only on eager, and the
  tab shows those per-step weights (a teacher-forced sdpa pass would show a different computation
  from the one that chose each token).
- auto is sdpa for `view` on any device: view keeps a few layers' maps of a long input, and eager
  would make the library hold every layer's.
- auto stays eager for a model whose sdpa output cannot be checked (ALBERT: no known output
  projection; Gemma2: the library has no sdpa kernel for its soft-capping).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

from attn_demos import settings
from attn_demos.adapters.precision import EAGER, SDPA
from attn_demos.settings import AUTO

GPU_SECONDS = 60  # the longest a task call may hold a ZeroGPU device (summaries of long articles)
EAGER_TASKS = frozenset({"generate"})  # tasks that need the library's per-step weights (module doc)
SDPA_TASKS = frozenset({"view"})  # auto = sdpa on any device: eager would hold every layer's maps (module doc)


def on_gpu(function: Callable) -> Callable:
    """`function` wrapped by spaces.GPU(duration=GPU_SECONDS) when the spaces package is installed."""
    if importlib.util.find_spec("spaces") is None:
        return function
    import spaces

    return functools.wraps(function)(spaces.GPU(duration=GPU_SECONDS)(function))


def attn_implementation_for(device_type: str, task: str, choice: str | None = None, sdpa_checkable: bool = True) -> str:
    """"eager" or "sdpa": what `task` (a tab's task, "compare" or "view") loads its model with on a
    device of `device_type` ("cpu", "cuda" …).

    choice: auto, eager or sdpa (None: the settings' attn_implementation). sdpa_checkable: whether
    the model's sdpa output can be verified (consulted by auto only). Rule and exceptions: module doc.
    """
    choice = choice or settings.current().attn_implementation
    if task in EAGER_TASKS:
        return EAGER
    if choice != AUTO:
        return choice
    return SDPA if sdpa_checkable and (device_type == "cuda" or task in SDPA_TASKS) else EAGER
