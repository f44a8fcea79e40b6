"""GPU checks under pytest (marked `gpu`): every case of scripts/gpu_checks.py, skipped with the
reason where torch sees no CUDA GPU (never counted as passed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

GPU_CHECKS = Path(__file__).resolve().parents[1] / "scripts" / "gpu_checks.py"
_spec = importlib.util.spec_from_file_location("gpu_checks", GPU_CHECKS)
gpu_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_checks)

pytestmark = pytest.mark.gpu


def run(requirement: str, check, *args) -> None:
    """Skip with the reason where `requirement` (a model, or gpu_checks.TWO_GPUS) cannot run here, else check."""
    reason = gpu_checks.skip_reason(requirement)
    if reason:
        pytest.skip(reason)
    check(*args)


@pytest.mark.parametrize(("model", "dtype", "implementation"), gpu_checks.cases())
def test_cuda_matches_within_the_dtype_tolerance(model, dtype, implementation):
    run(model, gpu_checks.check_case, model, dtype, implementation)


@pytest.mark.parametrize("shape", gpu_checks.KERNEL_SHAPES)
@pytest.mark.parametrize("dtype", gpu_checks.GPU_DTYPES)
def test_cuda_fused_kernel_against_float64(dtype, shape):
    run("bert", gpu_checks.check_kernel, dtype, shape)


def test_cuda_fused_kernel_from_threads_and_streams():
    run("bert", gpu_checks.check_kernel_threads)


def test_cuda_fused_kernel_on_a_gpu_not_current():
    run(gpu_checks.TWO_GPUS, gpu_checks.check_kernel_second_gpu)


def test_cuda_control_swapped_heads_fail():
    run("bert", gpu_checks.check_control)


def test_cuda_explorer_tab_runs_on_sdpa_and_passes_its_check():
    run("bert", gpu_checks.check_explorer_tab)


def test_cuda_view_in_bfloat16_matches_the_cpu_view():
    run("bert", gpu_checks.check_view)
