"""`attn-demos`: basics, compare, launch, make-checkpoints. Exit 0 ok, 1 mismatch, 2 usage errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from attn_demos.errors import AttnDemosError

    try:
        return args.run(args)
    except AttnDemosError as error:
        print(f"attn-demos {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attn-demos", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    basics = sub.add_parser("basics", help="the seed tutorial: softmax(q·kᵀ/√d_k)·v, torch and numpy side by side")
    basics.add_argument("--query", default=None, help='JSON matrix, default [[1,0,1]]')
    basics.add_argument("--key", default=None, help="JSON matrix, default [[1,0,0],[0,1,0]]")
    basics.add_argument("--value", default=None, help="JSON matrix, default [[1,2],[3,4]]")
    basics.add_argument("--json", action="store_true", help="print one JSON object")
    basics.set_defaults(run=_run_basics)

    compare = sub.add_parser("compare", help="recompute a model's attention from scratch and compare, head by head")
    compare.add_argument("--model", required=True, help="Hub id or local folder")
    compare.add_argument("--text", action="append", help="input text; repeat for a padded batch")
    compare.add_argument("--image", action="append", help="image file (vision models); repeat for a batch")
    compare.add_argument("--dataset", help="a .jsonl/.json/.csv file or a Hub dataset name")
    compare.add_argument("--field", help="the dataset's text column (default: its first text column)")
    compare.add_argument("--limit", type=int, default=None, help="use the first N dataset rows")
    compare.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    compare.add_argument("--tolerance", type=float, default=None, help="max |Δ| allowed (default 1e-5)")
    compare.add_argument("--num-beams", type=int, default=4, help="beam width for encoder-decoders (1 = greedy)")
    compare.add_argument("--max-new-tokens", type=int, default=20)
    compare.add_argument("--batch-size", type=int, default=8)
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument("--out", help="folder for report.json, report.csv and errors.png")
    compare.set_defaults(run=_run_compare)

    launch = sub.add_parser("launch", help="start the Gradio demo suite")
    launch.add_argument("--host", default=None, help="default 127.0.0.1 (Spaces sets GRADIO_SERVER_NAME)")
    launch.add_argument("--port", type=int, default=None, help="default 7860 (or GRADIO_SERVER_PORT)")
    launch.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    for task in ("explore", "translate", "answer", "summarize", "classify_image"):
        launch.add_argument(f"--{task.replace('_', '-')}-model", dest=f"{task}_model", help=f"model for {task}")
    launch.add_argument("--allow-user-models", action="store_true", help="let visitors type a model id")
    launch.set_defaults(run=_run_launch)

    checkpoints = sub.add_parser(
        "make-checkpoints", help="save random-weight checkpoints of every family (offline tests and demos)"
    )
    checkpoints.add_argument("folder")
    checkpoints.set_defaults(run=_run_make_checkpoints)
    return parser


def _run_basics(args) -> int:
    from attn_demos.tasks.basics import SEED_KEY, SEED_QUERY, SEED_VALUE, run_basics

    result = run_basics(args.query or SEED_QUERY, args.key or SEED_KEY, args.value or SEED_VALUE)
    if args.json:
        print(json.dumps(result.to_dict()))
        return EXIT_OK
    d_k = result.query.shape[-1]
    steps = [
        ("query q", result.query, None),
        ("key k", result.key, None),
        ("value v", result.value, None),
        (f"scores q·kᵀ/√{d_k}", result.scores, result.numpy_scores),
        ("weights softmax(scores)", result.weights, result.numpy_weights),
        ("output weights·v", result.output, result.numpy_output),
    ]
    for title, torch_value, numpy_value in steps:
        print(f"{title}:")
        print(_indent(torch_value) + ("   (torch)" if numpy_value is not None else ""))
        if numpy_value is not None:
            print(_indent(numpy_value) + "   (numpy)")
    verdict = "agree" if result.max_abs_diff < 1e-12 else "DISAGREE"
    print(f"torch and numpy {verdict}: max |Δ| = {result.max_abs_diff:.1e}")
    return EXIT_OK


def _indent(matrix) -> str:
    import numpy as np

    return "  " + np.array2string(matrix, precision=6, suppress_small=True).replace("\n", "\n  ")


def _run_compare(args) -> int:
    from attn_demos.adapters.compare import DEFAULT_TOLERANCE
    from attn_demos.tasks.comparison import CompareOptions, compare_model, read_texts

    if args.dataset and args.text:
        print("attn-demos compare: give --text or --dataset, not both", file=sys.stderr)
        return EXIT_USAGE
    texts = read_texts(args.dataset, args.field, args.limit) if args.dataset else args.text
    images = _open_images(args.image) if args.image else None
    options = CompareOptions(
        tolerance=args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE,
        num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    progress = bool(args.dataset) and not args.json
    report = compare_model(args.model, texts, images, args.dtype, options, progress=progress)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(_table(report))
    if args.out:
        from attn_demos.render.error_plot import write_report_files
        from attn_demos.tasks.registry import display_name

        paths = write_report_files(report, args.out, display_name(report.model))
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_MISMATCH


def _open_images(paths: list[str]) -> list:
    from PIL import Image, UnidentifiedImageError

    from attn_demos.errors import BadInputError

    images = []
    for path in paths:
        try:
            images.append(Image.open(path).convert("RGB"))
        except (OSError, UnidentifiedImageError):
            raise BadInputError(f"{path}: not a readable image") from None
    return images


def _table(report) -> str:
    lines = [
        f"model: {report.model} ({report.architecture})",
        f"{'kind':<20}{'layer':>6}  {'max |Δ|':>9}  heads (max |Δ| each)",
    ]
    for r in report.results:
        mark = "✓" if r.max_abs_err <= report.tolerance else "✗"
        heads = " ".join(f"{h:.0e}" for h in r.heads)
        lines.append(f"{r.kind:<20}{r.layer:>6}  {r.max_abs_err:>9.2e}  {mark} {heads}")
    verdict = "MATCH" if report.ok else "MISMATCH"
    lines.append(f"{verdict}: max |Δ| {report.max_abs_err:.2e} (tolerance {report.tolerance:g})")
    return "\n".join(lines)


def _run_launch(args) -> int:
    from attn_demos.tasks.registry import set_model_overrides

    set_model_overrides({k: getattr(args, f"{k}_model") for k in ("explore", "translate", "answer", "summarize", "classify_image")})
    if args.allow_user_models:
        os.environ["ATTN_DEMOS_ALLOW_USER_MODELS"] = "1"
    from attn_demos.ui.app import build, launch

    launch(build(), host=args.host, port=args.port, share=args.share)
    return EXIT_OK


def _run_make_checkpoints(args) -> int:
    from attn_demos.adapters.random_checkpoints import MODEL_CLASSES, build_checkpoint
    from attn_demos.tasks.examples import all_example_texts

    texts = all_example_texts()
    for family in MODEL_CLASSES:
        folder = build_checkpoint(family, Path(args.folder) / family, extra_texts=texts)
        print(f"{family:<11} {folder}  (random weights)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
