"""core/kernel_launch.py: launching a compiled kernel directly once its launch key has been checked.

A stand-in kernel with triton's two calling conventions (`kernel[grid](*args, **constexprs)`,
which returns the compiled kernel, and `compiled[grid](*args, *constexpr values)`) computes
out += x·scale (+ 1 with FLAG). On a GPU, tests/test_gpu.py checks the real kernel's direct launches.
"""

from __future__ import annotations

import logging

import pytest
import torch

from attn_demos.core import fused_check as fused
from attn_demos.core import kernel_launch
from attn_demos.core.kernel_launch import DirectLauncher

SCALE = 3


def toy(x: torch.Tensor, out: torch.Tensor, scale: int, flag: bool) -> None:
    out.add_(x * scale + (1 if flag else 0))


class Compiled:
    """What triton's launch returns; `convention`: "same" (as triton ≥ 3.3), "wrong" (writes
    other values, as a launcher that reads its arguments differently would), "fails" (raises)."""

    def __init__(self, convention: str = "same", on_launch=None):
        self.convention = convention
        self.on_launch = on_launch or (lambda: None)  # called at each launch
        self.grids: list[tuple] = []

    def __getitem__(self, grid):
        def runner(x, out, scale, flag):
            self.on_launch()
            self.grids.append(grid)
            if self.convention == "fails":
                raise TypeError("launcher takes 3 arguments")
            toy(x, out, scale, flag if self.convention == "same" else not flag)

        return runner


class Kernel:
    """A JIT function stand-in: `kernel[grid](x, out, scale, FLAG=…, num_warps=…, num_stages=…)`."""

    def __init__(self, convention: str = "same", on_launch=None):
        self.compiled = Compiled(convention, on_launch)
        self.on_launch = self.compiled.on_launch
        self.launches = 0

    def __getitem__(self, grid):
        def run(x, out, scale, *, FLAG, num_warps, num_stages):  # noqa: N803 (a constexpr's name)
            self.on_launch()
            self.launches += 1
            toy(x, out, scale, FLAG)
            return self.compiled

        return run


def launch(launcher: DirectLauncher, x: torch.Tensor, flag: bool = True, scale: int = SCALE, direct: bool = True,
           warps: int = 4):
    out = torch.zeros_like(x)
    launcher((2, 3), (x, out, scale), (flag,), warps, 3, tensors=2, written=1, direct=direct)
    return out


def test_a_checked_key_launches_directly_with_the_same_result():
    kernel = Kernel()
    launcher = DirectLauncher(kernel, ["FLAG"])
    x = torch.arange(6.0)
    first, second = launch(launcher, x), launch(launcher, x)
    expected = x * SCALE + 1
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert kernel.launches == 1 and launcher.counts == {"triton": 1, "direct": 1}
    # the first call's direct launch (into a copy) is the check; the second is the direct path
    assert kernel.compiled.grids == [(2, 3, 1), (2, 3, 1)]


@pytest.mark.parametrize("change", ["integer", "constexpr", "warps", "misaligned", "dtype"])
def test_anything_triton_specialises_on_takes_triton_again(change):
    kernel = Kernel()
    launcher = DirectLauncher(kernel, ["FLAG"])
    x = torch.arange(8.0)
    launch(launcher, x[:6])
    changed = {
        "integer": lambda: launch(launcher, x[:6], scale=SCALE + 1),
        "constexpr": lambda: launch(launcher, x[:6], flag=False),
        "warps": lambda: launch(launcher, x[:6], warps=8),
        "misaligned": lambda: launch(launcher, x[1:7]),  # 4 bytes past a 16-byte boundary
        "dtype": lambda: launch(launcher, x[:6].double()),
    }[change]
    out = changed()
    assert kernel.launches == 2 and launcher.counts["direct"] == 0 and len(launcher.compiled) == 2
    assert out.abs().sum() > 0


@pytest.mark.parametrize("convention", ["wrong", "fails"])
def test_a_direct_launch_that_disagrees_turns_direct_launches_off(convention, caplog):
    kernel = Kernel(convention)
    launcher = DirectLauncher(kernel, ["FLAG"])
    x = torch.arange(6.0)
    with caplog.at_level(logging.WARNING, logger=kernel_launch.__name__):
        outs = [launch(launcher, x) for _ in range(3)]
    assert all(torch.equal(out, x * SCALE + 1) for out in outs), "a result came from the disagreeing launch"
    assert not launcher.enabled and launcher.compiled == {}
    assert kernel.launches == 3 and launcher.counts == {"triton": 3}
    assert len(kernel.compiled.grids) == 1, "the direct launch was tried again after it disagreed"
    assert "launching through triton from now on" in caplog.text


def test_direct_false_always_takes_triton_and_keeps_nothing():
    kernel = Kernel()
    launcher = DirectLauncher(kernel, ["FLAG"])
    for _ in range(3):
        assert torch.equal(launch(launcher, torch.ones(4), direct=False), torch.full((4,), SCALE + 1.0))
    assert kernel.launches == 3 and kernel.compiled.grids == [] and launcher.compiled == {}


def test_the_cache_forgets_its_oldest_key_beyond_its_size(monkeypatch):
    monkeypatch.setattr(kernel_launch, "CACHE_SIZE", 2)
    launcher = DirectLauncher(Kernel(), ["FLAG"])
    x = torch.arange(6.0)
    for scale in (1, 2, 3):
        launch(launcher, x, scale=scale)
    assert [key[-1] for key in launcher.compiled] == [(2,), (3,)]


@pytest.mark.skipif(fused.triton is None, reason="needs triton")
def test_fused_check_names_its_kernels_arguments_in_signature_order():
    names = fused._check_kernel.arg_names
    assert tuple(names[-len(fused.CONSTEXPR_NAMES):]) == fused.CONSTEXPR_NAMES
    assert all(name.endswith("_ptr") for name in names[: fused.POINTER_ARGUMENTS])
    assert names[fused.POINTER_ARGUMENTS - 1] == "maxima_ptr", "the written tensor is not the last pointer"
    assert not names[fused.POINTER_ARGUMENTS].endswith("_ptr")


@pytest.mark.skipif(fused.triton is None or not fused.interpreting(), reason="needs triton's CPU interpreter")
def test_the_interpreter_launches_through_triton_only():
    q = torch.randn(1, 2, 16, 16)  # (B, H, T, d)
    output = torch.zeros(1, 16, 32)  # (B, T, H·d)
    before = dict(fused._launch.counts)
    for _ in range(2):
        deviation, _ = fused.fused_check(q, q, q, output, 0.25)
    assert fused._launch.counts["triton"] == before.get("triton", 0) + 2
    assert fused._launch.counts["direct"] == before.get("direct", 0) and fused._launch.enabled
    assert float(deviation.min()) > 0, "a zero output should deviate from attention's"


def test_launches_run_with_the_tensors_gpu_current(monkeypatch):
    """Triton launches on the current CUDA device: with the tensors on another GPU, both paths
    (triton's and the direct one) run inside torch.cuda.device(that GPU)."""
    inside: list[bool] = []
    entered: list[object] = []

    class Current:  # stands in for torch.cuda.device (no GPU here)
        def __init__(self, device):
            self.device = device

        def __enter__(self):
            entered.append(self.device)
            inside.append(True)

        def __exit__(self, *exc):
            inside.pop()

    monkeypatch.setattr(kernel_launch, "on_other_gpu", lambda device: True)
    monkeypatch.setattr(kernel_launch.torch.cuda, "device", Current)
    seen: list[bool] = []  # per launch: whether it ran inside Current
    kernel = Kernel(on_launch=lambda: seen.append(bool(inside)))
    launcher = DirectLauncher(kernel, ["FLAG"])
    x = torch.arange(6.0)
    launch(launcher, x)
    launch(launcher, x)
    assert launcher.counts == {"triton": 1, "direct": 1}
    assert seen == [True, True, True], "a launch ran with another GPU current"  # triton's, the check's, a direct one
    assert entered == [x.device, x.device]


@pytest.mark.skipif(fused.triton is None, reason="needs triton")
def test_through_triton_turns_direct_launches_off_and_back():
    assert fused.DIRECT_LAUNCH
    with pytest.raises(RuntimeError), fused.through_triton():
        assert not fused.DIRECT_LAUNCH
        raise RuntimeError("a failed benchmark call")
    assert fused.DIRECT_LAUNCH, "direct launches stayed off after the block"
