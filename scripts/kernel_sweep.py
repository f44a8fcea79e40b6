"""The fused check kernel's configurations on a GPU, and where a verified pass spends its time.

    python3 scripts/kernel_sweep.py [--out sweep.json] [--profile] [--quick]

For one layer of BERT-base (32 × 512) and ViT-base (32 × 197) attention in bfloat16 (12 heads of
64; with and without a key mask), the median time of core.fused_check under each configuration (rows per
program, keys per step, warps, pipeline stages), next to torch's own
scaled_dot_product_attention on the same q, k, v (the model's fused kernel: what the check adds to
every layer). Each time includes the call's launch from Python (one call, synchronised).
--profile: the CUDA kernels and CPU time of one verified BERT-base forward pass, and the CPU time
of one kernel launch. --quick: only QUICK_CONFIGS.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from attn_demos.core import fused_check  # noqa: E402
from attn_demos.core.torch_attention import merge_heads  # noqa: E402

# name -> (B, H, T, d, key mask): every key real passes no mask (the kernel's fast path); a tokenizer's
# padding passes a key mask (here all ones, so the work is the same)
SHAPES = {"bert-base 32x512": (32, 12, 512, 64, False), "bert-base 32x512 key mask": (32, 12, 512, 64, True),
          "vit-base 32x197": (32, 12, 197, 64, False)}
# (rows per program, keys per step, warps, stages)
CONFIGS = [(64, 64, 4, 2), (64, 64, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3), (128, 32, 4, 3), (128, 128, 8, 2),
           (128, 64, 8, 2), (64, 128, 4, 3), (128, 128, 8, 3), (64, 32, 4, 4)]
QUICK_CONFIGS = [(64, 64, 4, 3), (128, 64, 8, 2), (128, 64, 8, 3), (128, 128, 8, 3)]  # --quick: the leaders
REPEATS, WARMUP = 20, 3


def median_ms(run) -> float:
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        started = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def sweep(quick: bool = False) -> list[dict]:
    saved = fused_check.CONFIG
    try:
        return _sweep(QUICK_CONFIGS if quick else CONFIGS)
    finally:
        fused_check.CONFIG = saved


def _sweep(configs: list[tuple[int, int, int, int]]) -> list[dict]:
    rows = []
    for name, (batch, heads, length, d, key_mask) in SHAPES.items():
        generator = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(batch, heads, length, d, generator=generator).to("cuda", torch.bfloat16) for _ in range(3))
        mask = torch.ones(batch, 1, 1, length, dtype=torch.bool, device="cuda") if key_mask else None  # (B, 1, 1, T)
        output = merge_heads(torch.nn.functional.scaled_dot_product_attention(q, k, v))  # (B, T, H·d)
        sdpa_ms = median_ms(lambda q=q, k=k, v=v: torch.nn.functional.scaled_dot_product_attention(q, k, v))
        flops = 4 * batch * heads * length * length * d  # q·kᵀ and weights·v
        for block_m, block_n, warps, stages in configs:
            fused_check.CONFIG = (block_m, block_n, warps, stages)
            try:
                ms = median_ms(lambda q=q, k=k, v=v, o=output, d=d, m=mask: fused_check.fused_check(q, k, v, o, d**-0.5, mask=m))
                deviation, magnitude = fused_check.fused_check(q, k, v, output, d ** -0.5, mask=mask)
                error = float(deviation.max() / magnitude.max())
            except Exception as failure:  # a configuration the compiler or the GPU refuses
                ms, error = None, f"{type(failure).__name__}: {str(failure)[:120]}"
            row = {"shape": name, "config": [block_m, block_n, warps, stages],
                   "kernel_ms": None if ms is None else round(ms, 4), "sdpa_ms": round(sdpa_ms, 4),
                   "over_sdpa": None if ms is None else round(ms / sdpa_ms, 3),
                   "tflops_equivalent": None if ms is None else round(flops / ms / 1e9, 1),
                   "relative_error": error}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def launch_ms(calls: int = 200) -> float:
    """CPU time of one fused_check call on a tiny input (nothing to compute): its launch cost from Python."""
    q = torch.randn(1, 1, 16, 64, device="cuda", dtype=torch.bfloat16)  # (B, H, T, d)
    output = q[:, 0]  # (B, T, H·d)
    fused_check.fused_check(q, q, q, output, 0.125)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(calls):
        fused_check.fused_check(q, q, q, output, 0.125)
    elapsed = time.perf_counter() - started
    torch.cuda.synchronize()
    return elapsed / calls * 1e3


def profile() -> None:
    import transformers

    from attn_demos.adapters.extract import Side
    from attn_demos.adapters.families import family_for
    from attn_demos.adapters.loading import LoadedModel
    from attn_demos.adapters.verify import forward_with_verification

    config = transformers.BertConfig()
    config._attn_implementation = "sdpa"
    model = transformers.BertModel(config).eval().to("cuda", torch.bfloat16)
    loaded = LoadedModel("random bert", model, None, family_for("bert"), "BertModel", "sdpa")
    ids = torch.randint(1000, config.vocab_size, (32, 512), device="cuda")  # (B, T)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    side = Side([["t"] * 512] * 32, torch.ones(32, 512, dtype=torch.bool))

    def plain():
        with torch.no_grad():
            model(**inputs)

    def verified():
        forward_with_verification(loaded, inputs, side, keep_weights=False)

    times = {"plain_ms": median_ms(plain), "verified_ms": median_ms(verified), "check_launch_ms": launch_ms()}
    print(json.dumps({key: round(ms, 3) for key, ms in times.items()}), flush=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            verified()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=14, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=10, max_name_column_width=60))
    # the host's Python per verified pass (the bfloat16 pass is near host-bound): where its time goes
    host = cProfile.Profile()
    host.enable()
    for _ in range(10):
        verified()
    host.disable()
    torch.cuda.synchronize()
    pstats.Stats(host).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the sweep's rows as JSON here")
    parser.add_argument("--profile", action="store_true", help="also profile one verified BERT-base pass")
    parser.add_argument("--quick", action="store_true", help="only the leading configurations")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() or not fused_check.fused_check_available(torch.device("cuda"), torch.bfloat16):
        print("kernel_sweep: needs a CUDA GPU and triton", file=sys.stderr)
        return 2
    rows = sweep(args.quick)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    if args.profile:
        fused_check.CONFIG = None
        profile()
    return 0


if __name__ == "__main__":
    sys.exit(main())
