"""Download files: a PNG of what is on screen and a JSON of its numbers, in a folder the caller owns.

Each call writes a new uniquely named file (prefix-uuid4), so concurrent sessions never overwrite
each other; or, given `name`, exactly folder/name.png (the caller gives each export its own folder).
Every file appears whole (written to a temporary file, then renamed: replaced_whole).
`private_folder` makes a folder for such files that this process holds, and removes the folders
of earlier processes that ended without removing theirs (kill -9); `remove_older_than` keeps one
from growing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

try:  # POSIX: a folder's owner is the process holding a lock on the folder's OWNER file
    import fcntl
except ImportError:  # Windows: folders of ended processes are not found again (atexit removes them)
    fcntl = None

OWNER = ".owner"  # beside a private folder (outside it: nothing in it but what the caller writes)
_held: list = []  # this process's open OWNER files (closing one would release its lock)


def private_folder(prefix: str) -> Path:
    """A new folder under the system's temporary folder that only this user can read (0700),
    named prefix + random, and held by this process until it exits (a lock on the folder's name +
    OWNER beside it). First, the folders of the same prefix whose process has ended are removed."""
    root = Path(tempfile.gettempdir())
    remove_abandoned(root, prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    if fcntl is not None:
        staged = root / temporary_name(folder.name + OWNER)  # locked before it has the name others look for
        handle = open(staged, "w")  # noqa: SIM115 - kept open (and locked) while the process runs
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(staged, owner_file(folder))
        _held.append(handle)
    return folder


def owner_file(folder: Path) -> Path:
    return folder.with_name(folder.name + OWNER)


def remove_abandoned(root: Path, prefix: str) -> list[Path]:
    """Remove the folders `prefix`* under root whose OWNER nobody holds (their process ended
    without removing them); a folder without an OWNER, or another user's, is left alone."""
    removed = []
    if fcntl is None:
        return removed
    for owner in root.glob(f"{prefix}*{OWNER}"):
        try:
            handle = os.open(owner, os.O_RDONLY)
        except OSError:  # removed meanwhile, or not ours to open
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while its process runs
            folder = owner.with_name(owner.name[: -len(OWNER)])
            shutil.rmtree(folder, ignore_errors=True)
            owner.unlink(missing_ok=True)
            removed.append(folder)
        except OSError:
            pass
        finally:
            os.close(handle)
    return removed


def remove_older_than(folder: Path, max_age: float) -> None:
    """Delete what `folder` holds that was last changed more than max_age seconds ago (0: all)."""
    cutoff = time.time() - max_age
    for path in Path(folder).iterdir():
        try:
            if max_age <= 0 or path.stat().st_mtime < cutoff:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:  # removed meanwhile by another request
            pass


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
