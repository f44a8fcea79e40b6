"""How every interactive view travels: one root <div> whose data attributes carry the view's kind
and its JSON payload, read and drawn in the browser by the shared script (page.py).

    <div class="attn-view attn-{kind}" data-attn-view="{kind}" data-attn-key="{hash}"
         data-attn-payload="{JSON, HTML-escaped}" [data-attn-target="{elem_id}"]>
      <div class="attn-title">{title, HTML-escaped}</div> ... static parts ...
    </div>

Labels are user text: they only ever reach the page HTML-escaped (attributes, titles) or as
JSON that the script writes with textContent / canvas fillText, never as markup.

Numbers are sent as fixed-point integers: value = integer / 10**decimals (null for NaN / ±inf),
so a payload states its rounding exactly ("scale": 10**decimals).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re

import numpy as np

try:
    import orjson
except ImportError:  # the render layer also runs without gradio, and so without orjson
    orjson = None

from attn_demos.core.pooling import is_special

LABEL_LIMIT = 40  # characters of a token label shown before it is cut with "…"
NON_ASCII = re.compile(r"[^\x00-\x7f]")


def fixed_point(values, decimals: int) -> list:
    """(...) -> a flat list of ints = round(value · 10**decimals); None where not finite."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)  # (N,)
    scaled = np.round(array * 10.0**decimals)  # (N,)
    finite = np.isfinite(scaled)
    if finite.all():
        return scaled.astype(np.int64).tolist()
    cells = scaled.astype(object)
    cells[finite] = scaled[finite].astype(np.int64)
    cells[~finite] = None
    return cells.tolist()


def from_fixed_point(integers: list, decimals: int) -> np.ndarray:
    """The inverse of fixed_point (None -> NaN), for tests and for readers of a payload."""
    return np.array([np.nan if v is None else v / 10.0**decimals for v in integers], dtype=np.float64)


def display_label(token: str) -> str:
    """A token as it reads on screen: control characters escaped, '' for empty, long ones cut."""
    if token == "":
        return "''"
    text = "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in token)
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"


def labels_and_flags(labels: list[str], tokens: list[str] | None = None) -> tuple[list[str], list[int]]:
    """(labels as shown, 1 where the token is a special token such as [CLS] / </s> / <pad>);
    tokens: the pieces the labels were written from, when they differ (default: the labels)."""
    labels = [str(t) for t in labels]
    tokens = labels if tokens is None else [str(t) for t in tokens]
    return [display_label(t) for t in labels], [int(is_special(t)) for t in tokens]


def check_labels(name: str, labels, expected: int) -> list[str]:
    """labels as a list of str, or a one-line error when their count does not match."""
    labels = list(labels)
    if len(labels) != expected:
        raise ValueError(f"{name}: {len(labels)} labels for {expected} positions")
    return labels


def payload_json(payload: dict) -> str:
    """Compact JSON, ASCII only (non-ASCII and lone surrogates as \\u escapes); no NaN (invalid JSON).

    orjson where it is installed (it comes with gradio): about 12× faster than the standard
    library on a 512-token map's integers. What it cannot encode as asked (a lone surrogate, a
    non-finite float, which it would write as null, a key that is not a string) goes to the
    standard library, which escapes the first and refuses the second as before. Lists that start
    and end with an int are taken for fixed_point lists and not searched for non-finite floats
    (see _has_non_finite_float). orjson also writes a few types json refuses (dataclasses, dates,
    enums): the payloads are built here from plain types only."""
    if orjson is not None and not _has_non_finite_float(payload):
        try:
            text = orjson.dumps(payload).decode("utf-8")  # compact; non-ASCII as UTF-8
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
        else:
            return text if text.isascii() else NON_ASCII.sub(_json_escape, text)
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _json_escape(match: re.Match) -> str:
    """One non-ASCII character as JSON's \\u escape (a surrogate pair beyond U+FFFF), as json.dumps writes it."""
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _has_non_finite_float(value) -> bool:
    """Whether a float NaN or ±inf hides in the payload. Its numbers are fixed-point integers, so
    floats are few: this walks dicts and lists, but not a list that starts and ends with an int (a
    fixed_point list: ints, and None for what is not finite; a stray NaN anywhere inside one,
    nested too, would be written as null, which is what fixed_point writes for it anyway)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        if value and type(value[0]) is int and type(value[-1]) is int:  # a fixed-point list: ints (or None) only
            return False
        return any(_has_non_finite_float(v) for v in value)
    return False


def view_html(
    kind: str, payload: dict, title: str = "", static: str = "", target_id: str | None = None, group: str | None = None
) -> str:
    """The root element of one view. `static` is trusted HTML built by this package (legends,
    notes); `title` is escaped here. target_id: elem_id of a hidden gr.Textbox that receives the
    view's selections (see the package docstring). group: the views that follow one selection
    (selection.selection_html of the same group)."""
    text = payload_json(payload)
    key = hashlib.sha1(f"{kind}:{target_id}:{group}:{title}:{text}".encode()).hexdigest()[:16]
    target = f' data-attn-target="{html.escape(target_id, quote=True)}"' if target_id else ""
    if group:
        target += f' data-attn-group="{html.escape(group, quote=True)}"'
    title_html = f'<div class="attn-title">{html.escape(title)}</div>' if title else ""
    note = (
        '<div class="attn-needs-script">This view is drawn by a script: pass '
        "attn_demos.render.interactive.INTERACTIVE_HEAD to launch(head=...).</div>"
    )
    return (
        f'<div class="attn-view attn-{kind}" data-attn-view="{kind}" data-attn-key="{key}"{target}'
        f' data-attn-payload="{html.escape(text, quote=True)}">{title_html}{static}{note}</div>'
    )


def read_payload(view: str) -> dict:
    """The JSON payload of a view's HTML (for tests and tools): the inverse of view_html."""
    start = view.index('data-attn-payload="') + len('data-attn-payload="')
    return json.loads(html.unescape(view[start : view.index('"', start)]))


def parse_selection(text: str | None) -> dict | None:
    """A hidden textbox's value written by a view (JSON {"view": ..., ...}) -> that dict without
    its "n" / "t" nonce fields; None for an empty or malformed value."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("view"), str):
        return None
    return {key: value for key, value in data.items() if key not in ("n", "t")}
