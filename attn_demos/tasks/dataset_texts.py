"""Texts of a dataset for `compare --dataset`: a local JSON Lines, JSON or CSV file, read record
by record (with a limit, only that many records are read), or a Hub dataset, streamed.

Every problem with the data is a BadInputError of one line (CLI exit 2), naming the file and,
where there is one, the line.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

from attn_demos.errors import BadInputError

DATA_SUFFIXES = (".jsonl", ".json", ".csv")
ENCODING = "utf-8-sig"  # UTF-8; a byte-order mark (spreadsheet exports) is skipped


def read_texts(dataset: str, field: str | None = None, limit: int | None = None, split: str = "train") -> list[str]:
    """The texts of `field` (default: the first record's first text field) in the first `limit`
    records of `dataset` (all when None); records whose field is empty or not text are skipped."""
    path = Path(dataset).expanduser()
    if not path.exists():
        if names_a_file(dataset):
            raise BadInputError(f"{dataset}: no such file")
        records = _hub_records(dataset, split)
    elif path.suffix.lower() not in DATA_SUFFIXES:
        raise BadInputError(f"{dataset}: use a .jsonl, .json or .csv file")
    elif path.suffix.lower() == ".csv":
        records = _csv_records(path)
    else:
        records = _json_records(path)
    records = _first_records(dataset, records, limit)
    first = next(records, None)
    if first is None:
        raise BadInputError(f"{dataset}: no records")
    field = field or _first_text_field(dataset, first)
    if field not in first:
        raise BadInputError(f"{dataset}: no field {field!r} (fields: {', '.join(map(str, first))})")
    texts = (record.get(field) for record in itertools.chain([first], records))  # only the texts are kept
    texts = [text for text in texts if isinstance(text, str) and text.strip()]
    if not texts:
        raise BadInputError(f"{dataset}: field {field!r} holds no text")
    return texts


def names_a_file(dataset: str) -> bool:
    """A path rather than a Hub dataset name: a file suffix, or a path start."""
    return Path(dataset).suffix.lower() in DATA_SUFFIXES or dataset.startswith(("/", ".", "~"))


def _first_records(dataset: str, records: Iterator[dict], limit: int | None) -> Iterator[dict]:
    """The first `limit` records; reading stops there. Errors while reading are one line."""
    try:
        yield from itertools.islice(records, limit)
    except UnicodeDecodeError:
        raise BadInputError(f"{dataset}: not UTF-8 text") from None
    except OSError as error:
        raise BadInputError(f"{dataset}: cannot read it ({error.strerror or type(error).__name__})") from None


def _first_text_field(dataset: str, record: dict) -> str:
    """The first field of `record` that holds text (a CSV column of numbers is not text)."""
    for name, value in record.items():
        if isinstance(value, str) and value.strip() and not _is_number(value):
            return name
    raise BadInputError(f"{dataset}: no text field in its first record; name one with --field")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _json_records(path: Path) -> Iterator[dict]:
    """JSON Lines, one object a line (blank lines skipped); or, in a .json file, one JSON array of
    objects (an array is read whole: use JSON Lines for large sets)."""
    if path.suffix.lower() == ".json" and _starts_an_array(path):
        try:
            records = json.loads(path.read_text(encoding=ENCODING))
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
        for number, record in enumerate(records, 1):
            yield _record(path, record, f"item {number}")
        return
    for number, line in enumerate(_text_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        yield _record(path, record, f"line {number}")


def _starts_an_array(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines, each decoded on its own: reading stops where the caller stops, and bytes
    that are not UTF-8 are found on their own line, not in a block read ahead."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                yield line.decode(ENCODING if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise BadInputError(f"{path}: line {number} is not UTF-8 text") from None


def _record(path: Path, record, where: str) -> dict:
    if not isinstance(record, dict):
        raise BadInputError(f"{path}: {where} is not a JSON object (one record of named fields)")
    return record


def _csv_records(path: Path) -> Iterator[dict]:
    """A header row, then one record a row."""
    lines = _text_lines(path)
    with closing(lines):
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
            if not header or not any(name.strip() for name in header):
                raise BadInputError(f"{path}: no header row (a CSV file starts with its column names)")
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield dict(zip(header, row))
        except csv.Error as error:
            raise BadInputError(f"{path}: line {reader.line_num} is not valid CSV ({error})") from None


def _hub_records(name: str, split: str) -> Iterator[dict]:
    """A Hub dataset's records, streamed (nothing is downloaded beyond what is read)."""
    import datasets

    try:
        yield from datasets.load_dataset(name, split=split, streaming=True)
    except Exception as error:  # datasets raises ConnectionError, FileNotFoundError, ValueError…
        lines = str(error).strip().splitlines()
        reason = lines[0][:300] if lines else type(error).__name__
        raise BadInputError(f"{name}: cannot read this Hub dataset ({reason})") from None
