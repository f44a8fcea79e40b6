"""`attn-demos`: basics, compare, view, launch, make-checkpoints.

Exit 0 ok; 1 a mismatch (and nothing else); 2 a problem with what was given (arguments, input,
dataset, model, config), said in one line; 3 an unexpected error (a bug: its traceback follows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from attn_demos import settings
from attn_demos.settings import ATTN_IMPLEMENTATION_CHOICES, DEVICES, MODEL_TASKS, Settings

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3
# The flags that set the setting of the same name (where a command has them): --device sets device.
FLAG_SETTINGS = ("device", "attn_implementation", "maps_budget_mb", "allow_user_models", "host", "port") + tuple(
    f"{task}_model" for task in MODEL_TASKS
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from attn_demos.errors import AttnDemosError

    try:
        with settings.using(command_settings(args)):
            return args.run(args)
    except AttnDemosError as error:
        print(f"attn-demos {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"attn-demos {args.command}: out of memory: try a smaller input, dtype or model", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception:  # not a mismatch (exit 1): a bug, with what is needed to fix it
        traceback.print_exc()
        print(f"attn-demos {args.command}: unexpected error (a bug in attn-demos; traceback above)", file=sys.stderr)
        return EXIT_BUG


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistyped argument said in one line (exit 2) rather than after the usage;
    --help shows the usage."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def command_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings a command runs with: `environ`'s (None: the process's; Settings.from_env), with
    the flags it was given on top (FLAG_SETTINGS)."""
    given = {name: getattr(args, name) for name in FLAG_SETTINGS if getattr(args, name, None) not in (None, False)}
    return dataclasses.replace(Settings.from_env(environ), **given)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="attn-demos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    compare.add_argument("--limit", type=_positive_int, default=None, help="read only the first N dataset records")
    compare.add_argument("--dtype", choices=DTYPE_NAMES, default="float32")
    compare.add_argument(
        "--tolerance", type=_tolerance, default=None, help="max |Δ| allowed (default from the dtype: float32/float64 1e-5)"
    )
    _add_device_argument(compare)
    _add_implementation_argument(
        compare, "eager: compare with the library's weights; sdpa: run the fused kernel and verify by the output"
    )
    compare.add_argument(
        "--num-beams", type=_positive_int, default=None,
        help="beam width of generation (1 = greedy; encoder-decoders default 4); on a decoder-only model, "
        "check greedy and beam generation too (default: one forward pass)",
    )
    compare.add_argument(
        "--max-new-tokens", type=_positive_int, default=None,
        help="tokens to generate (encoder-decoders default 20); on a decoder-only model, check generation too",
    )
    compare.add_argument("--batch-size", type=_positive_int, default=8)
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument("--out", help="folder for report.json, report.csv and errors.png")
    compare.set_defaults(run=_run_compare)

    view = sub.add_parser(
        "view",
        help="one long input's views (chosen layers, rollout) with one layer's maps in memory at a time, verified",
    )
    view.add_argument("--model", default=None, help="Hub id or local folder (default: the embedded all-MiniLM-L6-v2)")
    given = view.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="the input text")
    given.add_argument("--text-file", help="read the input text from this UTF-8 file")
    given.add_argument("--image", help="image file (vision models)")
    view.add_argument(
        "--layer", type=int, action="append", default=[], help="keep this layer's maps (0 first, -1 last); repeat"
    )
    view.add_argument(
        "--head", type=int, action="append", default=[], help="also draw this head of each kept layer alone; repeat"
    )
    view.add_argument("--rollout", action="store_true", help="attention rollout over every layer")
    view.add_argument(
        "--fusion", choices=["mean", "max", "min"], default=None, help="how the rollout fuses heads (default mean)"
    )
    view.add_argument("--dtype", choices=DTYPE_NAMES, default="float32")
    _add_device_argument(view)
    _add_implementation_argument(
        view,
        "the model's attention kernel; either way each module's output verifies the recomputed weights",
        auto="sdpa on any device (eager would make the library hold every layer's maps of the long input)",
    )
    view.add_argument(
        "--maps-budget-mb",
        type=float,
        default=None,
        help=f"most MB the kept maps may take (default ${settings.variable('maps_budget_mb')}, "
        f"else {settings.DEFAULT_MAPS_BUDGET_MB:g})",
    )
    view.add_argument("--out", help="folder for the heatmaps (PNG), report.json and, with --save-maps, maps.npz")
    view.add_argument("--save-maps", action="store_true", help="also write the kept maps (float32) to maps.npz")
    view.add_argument("--json", action="store_true", help="print the report as one JSON object")
    view.set_defaults(run=_run_view)

    launch = sub.add_parser("launch", help="start the Gradio demo suite")
    launch.add_argument(
        "--host", default=None, help=f"default ${settings.HOST_ENV}, else {settings.DEFAULT_HOST} (Spaces sets 0.0.0.0)"
    )
    launch.add_argument(
        "--port", type=int, default=None, help=f"default ${settings.PORT_ENV}, else {settings.DEFAULT_PORT}"
    )
    launch.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    for task in MODEL_TASKS:
        launch.add_argument(
            f"--{task.replace('_', '-')}-model",
            dest=f"{task}_model",
            help=f"model for {task} (default ${settings.variable(f'{task}_model')}, else the tab's own)",
        )
    launch.add_argument(
        "--allow-user-models",
        action="store_true",
        help=f"let visitors type a model id (default ${settings.variable('allow_user_models')}=1, else no)",
    )
    _add_device_argument(launch)
    _add_implementation_argument(launch, "the tabs' attention (text generation always runs eager)")
    launch.set_defaults(run=_run_launch)

    checkpoints = sub.add_parser(
        "make-checkpoints", help="save random-weight checkpoints of every family (offline tests and demos)"
    )
    checkpoints.add_argument("folder")
    checkpoints.set_defaults(run=_run_make_checkpoints)
    return parser


DTYPE_NAMES = ["float32", "float64", "bfloat16", "float16"]  # attn_demos.adapters.precision.DTYPES


def _positive_int(text: str) -> int:
    """An argument that counts something: a whole number ≥ 1 (argparse says so in one line, exit 2)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return number


def _tolerance(text: str) -> float:
    """--tolerance: a finite number ≥ 0 (NaN would make every comparison a mismatch)."""
    try:
        tolerance = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number ≥ 0")
    return tolerance


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help=f"where the model runs (default ${settings.variable('device')}, else auto: cuda when available)",
    )


def _add_implementation_argument(parser: argparse.ArgumentParser, what: str, auto: str = "") -> None:
    """--attn-implementation, the same default for every command: auto, by tasks/hardware.py's rule
    (`auto` says what it picks for this command where that differs, and why)."""
    parser.add_argument(
        "--attn-implementation",
        choices=ATTN_IMPLEMENTATION_CHOICES,
        default=None,
        help=f"{what}. Default ${settings.variable('attn_implementation')}, else auto: "
        f"{auto or 'sdpa on cuda, eager elsewhere'}; auto is eager for a model whose sdpa output cannot be checked",
    )


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
    from attn_demos.render.report_files import remove_report_files
    from attn_demos.tasks.dataset_texts import read_texts

    if args.dataset and args.text:
        print("attn-demos compare: give --text or --dataset, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.out:
        _output_folder(args.out)
        remove_report_files(args.out)  # an earlier run's report never stays beside (or passes for) this one's
    texts = read_texts(args.dataset, args.field, args.limit) if args.dataset else _decoded(args.text)
    images = _open_images(args.image) if args.image else None
    from attn_demos.adapters.precision import resolve_device  # torch: once the inputs are known to be good
    from attn_demos.tasks.comparison import CompareOptions, compare_model

    chosen = settings.current()  # the environment's, with this command's flags
    resolve_device(chosen.device)  # a device torch cannot see is a one-line error before any loading
    rank, processes = _process_share()
    options = CompareOptions(
        tolerance=args.tolerance,
        num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        device=_process_device() if processes > 1 and chosen.device in (settings.AUTO, "cuda") else chosen.device,
        attn_implementation=chosen.attn_implementation,
    )
    progress = bool(args.dataset) and not args.json and rank == 0
    report = compare_model(
        args.model, texts, images, args.dtype, options, progress=progress, dataset=args.dataset, shard=(rank, processes)
    )
    if processes > 1:
        report = _merge_process_reports(report)
        if rank != 0:
            return EXIT_OK if report.ok else EXIT_MISMATCH
    paths = {}
    if args.out:  # before the verdict is printed: a script that sees it finds the files
        from attn_demos.render.report_files import write_report_files
        from attn_demos.tasks.registry import display_name

        paths = write_report_files(report, args.out, display_name(report.model))
    if args.json:
        from attn_demos.render.export import to_jsonable

        print(json.dumps(to_jsonable(report.to_dict()), allow_nan=False))  # the library's NaN becomes null
    else:
        print(_table(report))
    if paths:
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_MISMATCH


def _run_view(args) -> int:
    from attn_demos.errors import BadInputError
    from attn_demos.render.view_files import write_view_files
    from attn_demos.tasks.inputs import read_text_file
    from attn_demos.tasks.long_view import view_long_input
    from attn_demos.tasks.registry import EMBEDDED_MINILM

    if args.maps_budget_mb is not None and not args.maps_budget_mb > 0:
        raise BadInputError(f"--maps-budget-mb must be a positive number of megabytes, got {args.maps_budget_mb:g}")
    if args.save_maps and not args.out:
        raise BadInputError("--save-maps writes into --out FOLDER: give one")
    if args.fusion and args.layer and not args.rollout:
        raise BadInputError("--fusion says how --rollout fuses heads: add --rollout, or leave --fusion out")
    if args.out:
        _output_folder(args.out)
    text, file_notices = read_text_file(args.text_file) if args.text_file else (args.text, [])
    image = _open_images([args.image])[0] if args.image else None
    chosen = settings.current()  # the environment's, with this command's flags
    view = view_long_input(
        args.model or EMBEDDED_MINILM,
        text=text,
        image=image,
        layers=tuple(args.layer),
        heads=tuple(args.head),
        rollout=args.rollout,
        fusion=args.fusion or "mean",
        dtype=args.dtype,
        device=chosen.device,
        attn_implementation=chosen.attn_implementation,
        budget_mb=chosen.maps_budget_mb,
        progress=not args.json,
    )
    view.notices[:0] = file_notices
    report = view.report()
    paths, removed = {}, []
    if args.out:  # before the verdict is printed: a script that sees it finds the files
        paths, removed = write_view_files(
            args.out, view.kind, view.tokens, view.layers, view.rollout, report, args.save_maps, view.heads
        )
    if args.json:
        from attn_demos.render.export import to_jsonable

        print(json.dumps(to_jsonable(report), allow_nan=False))
    else:
        print(_view_summary(view))
    if paths:
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    if removed:
        print("removed the earlier view's " + ", ".join(p.name for p in removed), file=sys.stderr)
    return EXIT_OK if view.ok else EXIT_MISMATCH


def _output_folder(folder: str) -> None:
    """--out made before any model runs: a path that cannot be a folder is a one-line usage error."""
    from attn_demos.errors import BadInputError

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInputError(f"--out {folder}: cannot make a folder there ({error.strerror or type(error).__name__})") from None


def _view_summary(view) -> str:
    run = view.run
    lines = [f"model: {view.model}", *view.notices]
    lines.append(
        f"{run['tokens']:,} tokens, {run['layers']} {view.kind} layers; device {run['device']}, {run['dtype']}, "
        f"{run['attn_implementation']}; {run['seconds']} s; kept {run['kept_mb']} MB of maps"
    )
    kept = ", ".join(f"layer {layer} {tuple(weights.shape)}" for layer, weights in sorted(view.layers.items()))
    lines.append("kept: " + ", ".join(part for part in (kept, "rollout" if view.rollout is not None else "") if part))
    for layer, errors in enumerate(view.errors):  # (H,) each
        mark = "✓" if (errors <= view.tolerance).all() else "✗"
        lines.append(f"layer {layer:>3}  worst relative output error {errors.max():.2e} {mark}")
    if view.ok:
        lines.append(f"VERIFIED: every head's weights·v reproduces its module's output within {view.tolerance:g}")
    else:
        failing = int((~(view.errors <= view.tolerance)).sum())  # a NaN error fails
        lines.append(
            f"MISMATCH: {failing} of {view.errors.size} heads' weights·v do not reproduce their module's output "
            f"within {view.tolerance:g}"
        )
    return "\n".join(lines)


def _decoded(texts: list[str] | None) -> list[str] | None:
    """Command-line texts with bytes that were not UTF-8 (Python keeps them as lone surrogates,
    which a tokenizer refuses with a TypeError) shown as U+FFFD."""
    if texts is None:
        return None
    return [text.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for text in texts]


def _process_share() -> tuple[int, int]:
    """(this process's index, number of processes): (0, 1) unless started by `accelerate launch`
    or torchrun with several processes (WORLD_SIZE > 1), which joins their process group."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _process_device() -> str:
    """This process's GPU (cuda:LOCAL_RANK) when there are GPUs, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return "cpu"


def _merge_process_reports(report):
    """Every process's report, merged in process order (each compared one contiguous shard)."""
    import torch.distributed as dist

    from attn_demos.tasks.comparison import merge_reports

    reports = [None] * dist.get_world_size()
    dist.all_gather_object(reports, report)  # one per process, in process order
    merged = merge_reports(reports)
    merged.run["processes"] = len(reports)
    merged.run["runtime_s"] = max(r.run["runtime_s"] for r in reports)
    return merged


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
    from attn_demos.adapters.compare import MEASURES

    run = report.run
    lines = [
        f"model: {report.model} ({report.architecture}); checked {report.depth}",
        f"device {run.get('device')}, {run.get('dtype')}, {run.get('attn_implementation')}; "
        f"{len(report.inputs)} inputs, {sum(report.input_tokens)} tokens, {run.get('runtime_s')} s",
        f"measure: {MEASURES[run.get('attn_implementation', 'eager')]}",
        f"{'kind':<20}{'layer':>6}  {'max |Δ|':>9}  heads (max |Δ| each)",
    ]
    for r in report.results:
        mark = "✓" if r.max_abs_err <= report.tolerance else "✗"
        heads = " ".join(f"{h:.0e}" for h in r.heads)
        lines.append(f"{r.kind:<20}{r.layer:>6}  {r.max_abs_err:>9.2e}  {mark} {heads}")
    verdict = "MATCH" if report.ok else "MISMATCH"
    logits = f", allowing for logits up to {report.max_abs_logit:.3g}" if report.tolerance_from_rule and report.max_abs_logit else ""
    lines.append(f"{verdict}: max |Δ| {report.max_abs_err:.2e} (tolerance {report.tolerance:g}{logits})")
    nan = report.first_nan
    if nan is not None:
        lines.append(
            f"NaN: first at input {nan['input']}, {nan['kind']} layer {nan['layer']} head {nan['head']}; "
            f"NaN side: {nan['side']}" + (f" ({nan['why']})" if "why" in nan else "")
        )
    return "\n".join(lines)


def _run_launch(args) -> int:
    """Serve the app under the command's settings (main put them in force: the tabs read them on
    each request)."""
    from attn_demos.adapters.precision import resolve_device

    resolve_device()  # a device torch cannot see: one line and exit 2, before the app starts
    from attn_demos.ui.app import build, launch

    launch(build(), share=args.share)
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
