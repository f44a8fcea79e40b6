"""The `compare` job: load a model, feed it texts (or an image), and check the from-scratch
recomputation against the library, over one input or a whole dataset."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from attn_demos.adapters.compare import (
    ENCODER_DECODER_BEAMS,
    ComparisonReport,
    compare_text_model,
    compare_vision_model,
)
from attn_demos.adapters.loading import LoadedModel, load_model
from attn_demos.adapters.precision import resolve_device, tolerance_for

DEFAULT_TEXTS = ["The quick brown fox jumps over the lazy dog.", "Attention is all you need."]


@dataclass
class CompareOptions:
    tolerance: float | None = None  # None: the dtype's default (precision.tolerance_for)
    num_beams: int | None = None  # None: encoder-decoders 4 beams; decoder-only models do not generate
    max_new_tokens: int | None = None  # None: encoder-decoders 20; decoder-only models do not generate
    batch_size: int = 8
    device: str | None = None  # None: the settings' device (auto: cuda when available)
    # eager: compared with the library's weights; sdpa: the fused kernel, verified by the output;
    # auto: sdpa on cuda, else eager (tasks/hardware.py); None: the settings' choice
    attn_implementation: str | None = None


def compare_model(
    source: str,
    texts: list[str] | None = None,
    images: list | None = None,
    dtype: str = "float32",
    options: CompareOptions = CompareOptions(),
    progress: bool = False,
    dataset: str | None = None,
    shard: tuple[int, int] = (0, 1),
) -> ComparisonReport:
    """Compare one model over texts (padded batches of options.batch_size) or PIL images.

    shard (index, count): compare only that contiguous share of the inputs (one process of
    several); merge_reports in shard order gives the report of the whole set.
    """
    from attn_demos.tasks.registry import attn_implementation, resolve

    device = resolve_device(options.device)
    resolved = resolve(source)
    implementation = attn_implementation("compare", resolved, device, options.attn_implementation)
    loaded = load_model(resolved, dtype=dtype, device=device, attn_implementation=implementation)
    tolerance = tolerance_for(dtype) if options.tolerance is None else options.tolerance
    items = (images or [test_pattern(loaded)]) if loaded.family.vision else (texts or DEFAULT_TEXTS)
    items = shard_of(items, *shard)
    started = time.perf_counter()
    reports = [
        _compare_batch(loaded, batch, options, options.tolerance)
        for batch in tqdm(_chunks(items, options.batch_size), desc="comparing", unit="batch", disable=not progress)
    ]
    report = merge_reports(reports) if reports else ComparisonReport(source, loaded.architecture, tolerance, depth=loaded.depth)
    report.model = source
    report.run = run_facts(
        device=str(device),
        dtype=dtype,
        attn_implementation=implementation,
        batch_size=options.batch_size,
        num_beams=_beams_run(loaded, options),
        runtime_s=round(time.perf_counter() - started, 3),
        dataset=dataset,
    )
    return report


def _beams_run(loaded: LoadedModel, options: CompareOptions) -> int | None:
    """The beam width generation ran with; None when nothing was generated."""
    if loaded.is_encoder_decoder:
        return ENCODER_DECODER_BEAMS if options.num_beams is None else options.num_beams
    generated = loaded.is_decoder_only and (options.num_beams is not None or options.max_new_tokens is not None)
    return (options.num_beams or ENCODER_DECODER_BEAMS) if generated else None


def run_facts(**facts) -> dict:
    """What a published report must say about its run: the given facts plus library versions."""
    import transformers

    import attn_demos

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_demos": attn_demos.__version__,
    }
    return {**facts, "versions": versions}


def shard_of(items: list, index: int, count: int) -> list:
    """The index-th of `count` contiguous, near-equal shares of items (in order)."""
    size, extra = divmod(len(items), count)
    start = index * size + min(index, extra)
    return items[start : start + size + (index < extra)]


def _compare_batch(loaded: LoadedModel, batch: list, options: CompareOptions, tolerance: float | None) -> ComparisonReport:
    if loaded.family.vision:
        return compare_vision_model(loaded, pixel_values(loaded, batch), tolerance)
    return compare_text_model(loaded, batch, tolerance, options.num_beams, options.max_new_tokens)


def merge_reports(reports: list[ComparisonReport]) -> ComparisonReport:
    """One report over the inputs of several (the same model, in order); run facts of the first; the
    widest tolerance (the rule's grows with the largest logit met, see precision.tolerance_for)."""
    first = reports[0]
    tolerance = max(r.tolerance for r in reports)
    merged = ComparisonReport(first.model, first.architecture, tolerance, run=dict(first.run))
    merged.tolerance_from_rule, merged.depth = first.tolerance_from_rule, first.depth
    for report in reports:
        merged.extend(report)
    return merged


def pixel_values(loaded: LoadedModel, images: list) -> torch.Tensor:
    """PIL images -> (B, 3, H, W) with the model's own image processor."""
    return loaded.preprocessor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]


def test_pattern(loaded: LoadedModel):
    """A deterministic RGB image (smooth gradients and a square) at the model's input size."""
    from PIL import Image

    side = loaded.config.image_size
    y, x = np.mgrid[0:side, 0:side] / max(side - 1, 1)
    rgb = np.stack([x, y, 1 - x * y], axis=-1)  # (side, side, 3)
    quarter = side // 4
    rgb[quarter : 2 * quarter, quarter : 2 * quarter] = [1.0, 0.1, 0.1]
    return Image.fromarray((rgb * 255).astype(np.uint8))


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
