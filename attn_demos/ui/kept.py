"""What the app keeps of its visitors' results, counted in bytes.

Each tab keeps a visitor's last result (its maps, for re-drawing without running the model) in a
gr.State: Gradio bounds them by sessions (launch's state_session_capacity) and by time (15
minutes), not by size, and one long input's maps weigh hundreds of megabytes. So every kept
result is counted here; when their arrays exceed $ATTN_DEMOS_KEPT_MB, the oldest are let go of
(their arrays dropped, the newest result always kept), and a view of one says so and asks for a
new run instead of failing.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from attn_demos import settings
from attn_demos.errors import BadInputError

RELEASED = "released"  # the attribute a let-go result carries


class ResultReleasedError(BadInputError):
    """A view was asked of a result the app has let go of: the person runs it again."""


def kept_mb() -> float:
    """The settings' kept_mb ($ATTN_DEMOS_KEPT_MB, else settings.DEFAULT_KEPT_MB)."""
    return settings.current().kept_mb


def released_text() -> str:
    return (
        f"This result was let go to make room for newer ones (the server keeps at most {kept_mb():g} MB of "
        "visitors' results): run it again."
    )


def array_bytes(result) -> int:
    """Bytes of the numpy arrays a result holds as attributes (its maps); 0 for anything else."""
    attributes = getattr(result, "__dict__", {})
    return sum(value.nbytes for value in attributes.values() if isinstance(value, np.ndarray))


def is_released(value) -> bool:
    return getattr(value, RELEASED, False) is True


class KeptResults:
    """The results the app keeps, oldest first, with their sizes; weakly held (Gradio's states own them)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a result's weakref callback may run inside keep(), in this thread
        self._sizes: OrderedDict[int, tuple[weakref.ref, int]] = OrderedDict()  # id -> (result, bytes)

    def keep(self, result) -> None:
        """Count `result`; let the oldest go while the total exceeds the budget (never the newest).
        Something without arrays (or that cannot be referenced weakly) is not counted."""
        size = array_bytes(result)
        if not size or type(result).__weakrefoffset__ == 0:
            return
        budget = kept_mb() * 2**20
        with self._lock:
            key = id(result)
            self._sizes[key] = (weakref.ref(result, lambda _, key=key: self._forget(key)), size)
            self._sizes.move_to_end(key)
            while self.total() > budget and len(self._sizes) > 1:
                _, (oldest, _) = self._sizes.popitem(last=False)
                if oldest() is not None:
                    release(oldest())

    def total(self) -> int:
        return sum(size for weak, size in self._sizes.values() if weak() is not None)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._sizes.pop(key, None)


def release(result) -> None:
    """Drop a result's arrays (every view of it then says so; see is_released)."""
    for name, value in list(vars(result).items()):
        if isinstance(value, np.ndarray):
            setattr(result, name, None)
    setattr(result, RELEASED, True)


KEPT = KeptResults()  # the app's one account
