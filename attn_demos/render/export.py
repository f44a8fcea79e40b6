"""Download files: a PNG of what is on screen and a JSON of its numbers, in a folder the caller owns.

Each call writes a new uniquely named file (prefix-uuid4), so concurrent sessions never overwrite
each other; or, given `name`, exactly folder/name.png (the caller gives each export its own folder).
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import numpy as np
from PIL import Image


def _unique_path(folder: str | Path, prefix: str, suffix: str, name: str | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}{suffix}" if name else folder / f"{prefix}-{uuid.uuid4().hex}{suffix}"


def export_png(image: Image.Image | np.ndarray, folder: str | Path, name: str | None = None, prefix: str = "attention") -> Path:
    """Write image (a PIL image, or a (H, W, 3|4) uint8 array) as PNG into folder; return its path."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path = _unique_path(folder, prefix, ".png", name)
    image.save(path, format="PNG")
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
    path.write_text(json.dumps(to_jsonable(payload), ensure_ascii=False, indent=1, allow_nan=False), encoding="utf-8")
    return path
