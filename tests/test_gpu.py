"""GPU checks under pytest (marked `gpu`): every case of scripts/gpu_checks.py, skipped with the
reason where torch sees no CUDA GPU (never counted as passed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import gpu_checks  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(("model", "dtype", "implementation"), gpu_checks.cases())
def test_cuda_matches_within_the_dtype_tolerance(model, dtype, implementation):
    reason = gpu_checks.skip_reason(model)
    if reason:
        pytest.skip(reason)
    gpu_checks.check_case(model, dtype, implementation)


def test_cuda_control_swapped_heads_fail():
    reason = gpu_checks.skip_reason("bert")
    if reason:
        pytest.skip(reason)
    gpu_checks.check_control()
