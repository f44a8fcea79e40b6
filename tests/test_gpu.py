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


@pytest.mark.parametrize(("model", "dtype", "implementation"), gpu_checks.cases())
def test_cuda_matches_within_the_dtype_tolerance(model, dtype, implementation):
    reason = gpu_checks.skip_reason(model)
    if reason:
        pytest.skip(reason)
    gpu_checks.check_case(model, dtype, implementation)


@pytest.mark.parametrize("shape", gpu_checks.KERNEL_SHAPES)
@pytest.mark.parametrize("dtype", gpu_checks.GPU_DTYPES)
def test_cuda_fused_kernel_against_float64(dtype, shape):
    reason = gpu_checks.skip_reason("bert")
    if reason:
        pytest.skip(reason)
    gpu_checks.check_kernel(dtype, shape)


def test_cuda_fused_kernel_from_threads_and_streams():
    reason = gpu_checks.skip_reason("bert")
    if reason:
        pytest.skip(reason)
    gpu_checks.check_kernel_threads()


def test_cuda_fused_kernel_on_a_gpu_not_current():
    reason = gpu_checks.skip_reason(gpu_checks.TWO_GPUS)
    if reason:
        pytest.skip(reason)
    gpu_checks.check_kernel_second_gpu()


def test_cuda_control_swapped_heads_fail():
    reason = gpu_checks.skip_reason("bert")
    if reason:
        pytest.skip(reason)
    gpu_checks.check_control()


def test_cuda_explorer_tab_runs_on_sdpa_and_passes_its_check():
    reason = gpu_checks.skip_reason("bert")
    if reason:
        pytest.skip(reason)
    gpu_checks.check_explorer_tab()


def test_cuda_view_in_bfloat16_matches_the_cpu_view():
    reason = gpu_checks.skip_reason("bert")
    if reason:
        pytest.skip(reason)
    gpu_checks.check_view()
