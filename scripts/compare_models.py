"""Compare several models at once: from-scratch recomputation vs the library, layer by layer.

    python scripts/compare_models.py MODEL [MODEL ...] [--dtype float64] [--device cuda]
        [--attn-implementation sdpa] [--text ...] [--out DIR]

Each MODEL is a Hub id or a local folder; `--random-checkpoints DIR` first builds random-weight
checkpoints of every supported family into DIR and adds them to the list (works offline).
Prints one summary row per model (worst error per kind) and exits 1 if any model mismatches,
2 if any could not be loaded or is unsupported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from attn_demos.adapters.precision import ATTN_IMPLEMENTATIONS, DEVICES, DTYPES, resolve_device
from attn_demos.errors import AttnDemosError
from attn_demos.tasks.comparison import CompareOptions, compare_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="Hub ids or local folders")
    parser.add_argument("--random-checkpoints", metavar="DIR", help="build and add random checkpoints of every family")
    parser.add_argument("--text", action="append", help="input text (repeat for a padded batch)")
    parser.add_argument("--dtype", action="append", choices=list(DTYPES), help="repeatable; default float32")
    parser.add_argument("--tolerance", type=float, default=None, help="default: from each dtype")
    parser.add_argument("--device", choices=DEVICES, default=None, help="default $ATTN_DEMOS_DEVICE, else auto")
    parser.add_argument("--attn-implementation", choices=ATTN_IMPLEMENTATIONS, default="eager")
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--out", help="write summary.json here")
    args = parser.parse_args(argv)

    models = list(args.models)
    if args.random_checkpoints:
        from attn_demos.adapters.random_checkpoints import MODEL_CLASSES, build_checkpoint
        from attn_demos.tasks.examples import all_example_texts

        texts = all_example_texts()
        models += [str(build_checkpoint(f, Path(args.random_checkpoints) / f, extra_texts=texts)) for f in MODEL_CLASSES]
    if not models:
        parser.error("name at least one model, or --random-checkpoints DIR")
    try:
        resolve_device(args.device)
    except AttnDemosError as error:
        print(f"compare_models: {error}", file=sys.stderr)
        return 2
    options = CompareOptions(
        tolerance=args.tolerance,
        num_beams=args.num_beams,
        device=args.device,
        attn_implementation=args.attn_implementation,
    )
    rows, status = [], 0
    print(f"{'model':<48} {'dtype':<8} {'ok':<4} {'max |Δ|':>9} {'tolerance':>9}  worst per kind")
    for model in models:
        for dtype in args.dtype or ["float32"]:
            try:
                report = compare_model(model, args.text, None, dtype, options)
            except AttnDemosError as error:
                print(f"{model:<48} {dtype:<8} --   {'':>9} {'':>9}  {error}")
                rows.append({"model": model, "dtype": dtype, "error": str(error)})
                status = 2
                continue
            kinds = ", ".join(f"{k} {v:.1e}" for k, v in report.kinds().items())
            verdict = "yes" if report.ok else "NO"
            print(f"{model[-48:]:<48} {dtype:<8} {verdict:<4} {report.max_abs_err:>9.2e} {report.tolerance:>9.2g}  {kinds}")
            rows.append(report.to_dict())  # dtype, device, tolerance… are among the run facts
            if not report.ok and status == 0:
                status = 1
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "summary.json").write_text(json.dumps(rows, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
