"""Where the task functions run on Hugging Face Spaces: inside `spaces.GPU` on ZeroGPU hardware.

ZeroGPU attaches a GPU only while a function decorated with `spaces.GPU` runs. The `spaces`
package exists on Spaces (and is imported only if present); elsewhere, and on Spaces without
ZeroGPU, `spaces.GPU` leaves the function as it is, and so does `on_gpu` when it is missing.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

GPU_SECONDS = 60  # the longest a task call may hold a ZeroGPU device (summaries of long articles)


def on_gpu(function: Callable) -> Callable:
    """`function` wrapped by spaces.GPU(duration=GPU_SECONDS) when the spaces package is installed."""
    if importlib.util.find_spec("spaces") is None:
        return function
    import spaces

    return functools.wraps(function)(spaces.GPU(duration=GPU_SECONDS)(function))
