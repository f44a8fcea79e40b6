"""The `compare` job: load a model, feed it texts (or an image), and check the from-scratch
recomputation against the library, over one input or a whole dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from attn_demos.adapters.compare import (
    DEFAULT_TOLERANCE,
    ComparisonReport,
    LayerResult,
    compare_text_model,
    compare_vision_model,
)
from attn_demos.adapters.loading import LoadedModel, load_model
from attn_demos.errors import BadInputError

DEFAULT_TEXTS = ["The quick brown fox jumps over the lazy dog.", "Attention is all you need."]


@dataclass
class CompareOptions:
    tolerance: float = DEFAULT_TOLERANCE
    num_beams: int = 4
    max_new_tokens: int = 20
    batch_size: int = 8


def compare_model(
    source: str,
    texts: list[str] | None = None,
    images: list | None = None,
    dtype: str = "float32",
    options: CompareOptions = CompareOptions(),
    progress: bool = False,
) -> ComparisonReport:
    """Compare one model over texts (padded batches of options.batch_size) or PIL images."""
    loaded = load_model(source, dtype=dtype)
    if loaded.family.vision:
        batches = _chunks(images or [test_pattern(loaded)], options.batch_size)
    else:
        batches = _chunks(texts or DEFAULT_TEXTS, options.batch_size)
    reports = [
        _compare_batch(loaded, batch, options)
        for batch in tqdm(batches, desc="comparing", unit="batch", disable=not progress)
    ]
    return merge_reports(reports)


def _compare_batch(loaded: LoadedModel, batch: list, options: CompareOptions) -> ComparisonReport:
    if loaded.family.vision:
        return compare_vision_model(loaded, pixel_values(loaded, batch), options.tolerance)
    return compare_text_model(loaded, batch, options.tolerance, options.num_beams, options.max_new_tokens)


def merge_reports(reports: list[ComparisonReport]) -> ComparisonReport:
    """Worst error per (kind, layer, head) over several reports of the same model."""
    merged = ComparisonReport(reports[0].model, reports[0].architecture, reports[0].tolerance)
    by_key: dict[tuple[str, int], LayerResult] = {}
    for report in reports:
        for r in report.results:
            key = (r.kind, r.layer)
            if key not in by_key:
                by_key[key] = LayerResult(r.kind, r.layer, r.max_abs_err, list(r.heads))
            else:
                old = by_key[key]
                old.heads = [max(a, b) for a, b in zip(old.heads, r.heads)]
                old.max_abs_err = max(old.max_abs_err, r.max_abs_err)
    merged.results = list(by_key.values())
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


def read_texts(dataset: str, field: str | None = None, limit: int | None = None, split: str = "train") -> list[str]:
    """Texts from a local JSONL/JSON/CSV file or a named Hub dataset, through `datasets`."""
    import datasets

    path = Path(dataset)
    if path.exists():
        kind = {".jsonl": "json", ".json": "json", ".csv": "csv"}.get(path.suffix.lower())
        if kind is None:
            raise BadInputError(f"{dataset}: use a .jsonl, .json or .csv file")
        data = datasets.load_dataset(kind, data_files=str(path), split="train")
    else:
        data = datasets.load_dataset(dataset, split=split)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    columns = [c for c, f in data.features.items() if getattr(f, "dtype", None) == "string"]
    if field is None:
        if not columns:
            raise BadInputError(f"{dataset}: no text column")
        field = columns[0]
    elif field not in data.column_names:
        raise BadInputError(f"{dataset}: no column {field!r} (columns: {', '.join(data.column_names)})")
    texts = [t for t in data[field] if isinstance(t, str) and t.strip()]
    if not texts:
        raise BadInputError(f"{dataset}: column {field!r} holds no text")
    return texts


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
