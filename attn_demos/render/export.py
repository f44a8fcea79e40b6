"""Download files: a PNG of what is on screen and a JSON of its numbers, in a folder the caller owns.

Each call writes a new uniquely named file (prefix-uuid4), so concurrent sessions never overwrite
each other; or, given `name`, exactly folder/name.png (the caller gives each export its own folder).
Every file appears whole (written to a temporary file, then renamed: replaced_whole).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image


def _unique_path(folder: str | Path, prefix: str, suffix: str, name: str | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}{suffix}" if name else folder / f"{prefix}-{uuid.uuid4().hex}{suffix}"


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write into; when the block ends, it replaces
    `path` in one step (os.replace), so `path` is never seen half-written, even after a kill -9
    (which leaves at most a temporary file, named by temporary_name). On an error nothing replaces it."""
    temporary = path.with_name(temporary_name(path.name))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def temporary_name(name: str) -> str:
    """'report.json' -> '.report.<8 hex>.tmp.json': hidden, unique, with the suffix writers go by."""
    stem, dot, suffix = name.rpartition(".")
    return f".{stem}.{uuid.uuid4().hex[:8]}.tmp{dot}{suffix}" if dot else f".{name}.{uuid.uuid4().hex[:8]}.tmp"


def export_png(image: Image.Image | np.ndarray, folder: str | Path, name: str | None = None, prefix: str = "attention") -> Path:
    """Write image (a PIL image, or a (H, W, 3|4) uint8 array) as PNG into folder; return its path."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path = _unique_path(folder, prefix, ".png", name)
    with replaced_whole(path) as temporary:
        image.save(temporary, format="PNG")
    return path


def to_jsonable(value):
    """Plain JSON types, numbers unchanged: numpy arrays -> nested lists (via .tolist(), so each
    float is the exact value stored), numpy scalars -> Python numbers, tuples -> lists, Paths ->
    strings. NaN and ±inf are not JSON: they become null."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def export_json(payload: dict, folder: str | Path, name: str | None = None, prefix: str = "attention") -> Path:
    """Write payload as UTF-8 JSON into folder; return its path.

    Numbers are written exactly as given (Python's shortest round-tripping float repr), so
    json.load gives back equal values; round them before calling for a smaller file (the views
    round to 6 decimals). See to_jsonable for numpy values and non-finite floats.
    """
    path = _unique_path(folder, prefix, ".json", name)
    text = json.dumps(to_jsonable(payload), ensure_ascii=False, indent=1, allow_nan=False)
    with replaced_whole(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path
