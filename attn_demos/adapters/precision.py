"""Devices, dtypes and the tolerance each dtype allows: the one place these are decided.

Tolerance rule. Attention weights lie in [0, 1], so a weight's rounding error is measured in units
of the dtype's machine epsilon at 1 (`torch.finfo(dtype).eps`). Two computations of the same
weight in a different order (the library's kernel and the core) differ by a few such units, so the
default tolerance is TOLERANCE_EPSILONS × eps, but never below TOLERANCE_FLOOR: under it the order
of float32 sums and the float32 softmax some families run whatever the dtype (ViT) decide, not the
dtype. That gives float64 and float32 1e-5 (today's value), float16 3.9e-3 and bfloat16 3.1e-2.

Large logits. A weight is a softmax of logits, and a logit of magnitude L is itself rounded at L's
size, by about L·eps. A softmax weight moves by at most half as much as its logits do
(|∂w_i/∂s_j| summed over j is 2·w_i·(1 − w_i) ≤ ½), and the library and the core round
independently, so two correct computations of a weight can differ by about L·eps: sharp attention
(L in the thousands) exceeds 1e-5 in float32 that way, and agrees to 1e-13 in float64. The
tolerance therefore adds LOGIT_EPSILONS × eps × L, L the largest |logit| the recomputation met
(0 where it is not measured: the sdpa output check).

The sdpa verification compares outputs (weights·v) with the same numbers taken relative to the
largest |output| of the layer (see verify.py).
"""

from __future__ import annotations

import torch

from attn_demos import settings
from attn_demos.errors import AttnDemosError
from attn_demos.settings import DEVICES

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
TOLERANCE_EPSILONS = 4  # units of the dtype's epsilon at 1
TOLERANCE_FLOOR = 1e-5
LOGIT_EPSILONS = 1  # units of eps per unit of the largest |logit|: ½ per side, two sides (see above)
EAGER, SDPA = "eager", "sdpa"  # the library returns its weights / runs its fused kernel
ATTN_IMPLEMENTATIONS = (EAGER, SDPA)


class DeviceError(AttnDemosError):
    """A device was asked for that torch cannot see (CLI exit 2)."""


def dtype_of(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def tolerance_for(dtype: str | torch.dtype, logit_size: float = 0.0) -> float:
    """Default max |Δ| between two attention weights computed in `dtype` from logits of magnitude
    up to `logit_size` (rule in the module doc)."""
    dtype = dtype_of(dtype) if isinstance(dtype, str) else dtype
    eps = torch.finfo(dtype).eps
    return max(TOLERANCE_FLOOR, TOLERANCE_EPSILONS * eps) + LOGIT_EPSILONS * eps * logit_size


def resolve_device(name: str | None = None) -> torch.device:
    """'auto' (or None: the settings' device) -> cuda when torch sees a GPU, else cpu.

    An explicit device torch cannot see raises DeviceError with one line.
    """
    name = name or settings.current().device
    kind = name.split(":")[0]  # "cuda:1" names one GPU
    if kind not in DEVICES:
        raise DeviceError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: torch sees no CUDA GPU here (use --device cpu or auto)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("--device mps: torch sees no Apple GPU here (use --device cpu or auto)")
    return torch.device(name)


def to_device(inputs: dict, device: torch.device) -> dict:
    """Model inputs with every tensor moved to `device` (other values unchanged)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
