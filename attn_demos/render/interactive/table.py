"""Numbers tables that stay small: only the first rows (and columns) of a big matrix, saying so; a
paired table puts two matrices of one shape (torch and numpy) side by side in one table."""

from __future__ import annotations

import html

import numpy as np

MAX_ROWS = 20
MAX_COLUMNS = 20


def numbers_table_html(matrix, row_labels: list[str] | None = None, column_labels: list[str] | None = None,
                       title: str = "", decimals: int = 4, max_rows: int = MAX_ROWS,
                       max_columns: int = MAX_COLUMNS) -> str:
    """matrix (R, C) (or (C,)) -> an HTML <table> of its first max_rows × max_columns values, rounded
    to `decimals`, with a caption such as "first 20 of 300 rows". Labels are escaped."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[None, :]  # (1, C)
    if matrix.ndim != 2:
        raise ValueError(f"numbers table needs a 1-D or 2-D array, got shape {matrix.shape}")
    rows, columns = matrix.shape
    for name, labels, count in (("row", row_labels, rows), ("column", column_labels, columns)):
        if labels is not None and len(labels) != count:
            raise ValueError(f"{len(labels)} {name} labels for {count} {name}s")
    shown_rows, shown_columns = min(rows, max_rows), min(columns, max_columns)
    caption = []
    if shown_rows < rows:
        caption.append(f"first {shown_rows} of {rows} rows")
    if shown_columns < columns:
        caption.append(f"first {shown_columns} of {columns} columns")
    cell = "padding: 2px 6px; text-align: right; border-bottom: 1px solid #e5e7eb;"
    head = "padding: 2px 6px; font-weight: 600; text-align: right;"
    parts = ['<div class="attn-table" style="overflow-x: auto; max-width: 100%;">']
    if title:
        parts.append(f'<div class="attn-title" style="font-weight: 600;">{html.escape(title)}</div>')
    if caption:
        parts.append(f'<div class="attn-note" style="font-size: 0.85em; opacity: 0.8;">{html.escape(", ".join(caption))}</div>')
    parts.append('<table style="border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.9em;">')
    if column_labels is not None:
        parts.append("<tr><th></th>" if row_labels is not None else "<tr>")
        parts.extend(f'<th style="{head}">{html.escape(str(c))}</th>' for c in column_labels[:shown_columns])
        parts.append("</tr>")
    for r in range(shown_rows):
        parts.append("<tr>")
        if row_labels is not None:
            parts.append(f'<th style="{head} text-align: left;">{html.escape(str(row_labels[r]))}</th>')
        parts.extend(f'<td style="{cell}">{v:.{decimals}f}</td>' for v in matrix[r, :shown_columns])
        parts.append("</tr>")
    parts.append("</table></div>")
    return "".join(parts)


PAIRED_ROWS = 10  # a paired table shows its first 10 rows ...
PAIRED_COLUMNS = 6  # ... and the first 6 columns of each matrix


def paired_table_html(first, second, names: tuple[str, str] = ("torch", "numpy"), row_labels: list[str] | None = None,
                      column_labels: list[str] | None = None, title: str = "", decimals: int = 6,
                      max_rows: int = PAIRED_ROWS, max_columns: int = PAIRED_COLUMNS) -> str:
    """Two matrices of one shape (R, C) (or (C,)) in ONE table, side by side, each row once: the
    first max_columns columns of `first`, then of `second`, then the row's largest |first − second|
    (over every column). Only the first max_rows rows are shown, then a last row "… N more rows";
    cut columns read "…" and the note above says how many. Labels are escaped."""
    first, second = (np.asarray(m, dtype=np.float64) for m in (first, second))
    first, second = (m[None, :] if m.ndim == 1 else m for m in (first, second))
    if first.ndim != 2 or first.shape != second.shape:
        raise ValueError(f"paired table needs two matrices of one 2-D shape, got {first.shape} and {second.shape}")
    rows, columns = first.shape
    row_labels = [str(i) for i in range(rows)] if row_labels is None else [str(x) for x in row_labels]
    column_labels = [str(j) for j in range(columns)] if column_labels is None else [str(x) for x in column_labels]
    if len(row_labels) != rows or len(column_labels) != columns:
        raise ValueError(f"{len(row_labels)} row and {len(column_labels)} column labels for a {rows}×{columns} matrix")
    shown_rows, shown_columns = min(rows, max_rows), min(columns, max_columns)
    cut = shown_columns < columns
    difference = np.abs(first - second).max(axis=1)  # (R,) over every column
    nowrap = "white-space: nowrap; padding: 2px 6px;"
    cell = f"{nowrap} text-align: right; border-bottom: 1px solid rgba(127, 127, 127, 0.25);"
    head = f"{nowrap} font-weight: 600; text-align: right;"
    group = f"{nowrap} font-weight: 600; text-align: center; border-bottom: 1px solid rgba(127, 127, 127, 0.5);"
    divider = "border-left: 2px solid rgba(127, 127, 127, 0.4);"
    span = shown_columns + int(cut)
    parts = ['<div class="attn-table attn-paired" style="overflow-x: auto; max-width: 100%;">']
    if title:
        parts.append(f'<div class="attn-title" style="font-weight: 600;">{html.escape(title)}</div>')
    if cut:
        parts.append(f'<div class="attn-note" style="font-size: 0.85em; opacity: 0.8;">first {shown_columns} of '
                     f"{columns} columns of each</div>")
    parts.append('<table style="border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.9em;">')
    parts.append(f'<tr><th style="{head}"></th>')
    for name in names:
        parts.append(f'<th colspan="{span}" style="{group} {divider}">{html.escape(name)}</th>')
    parts.append(f'<th style="{group} {divider}">max |Δ|</th></tr><tr><th style="{head} text-align: left;">row</th>')
    for _ in names:
        labels = column_labels[:shown_columns] + (["…"] if cut else [])
        parts.extend(f'<th style="{head}{divider if j == 0 else ""}">{html.escape(label)}</th>' for j, label in enumerate(labels))
    parts.append(f'<th style="{head} {divider}"></th></tr>')
    for r in range(shown_rows):
        parts.append(f'<tr class="attn-paired-row"><th style="{head} text-align: left;">{html.escape(row_labels[r])}</th>')
        for matrix in (first, second):
            values = [f"{v:.{decimals}f}" for v in matrix[r, :shown_columns]] + (["…"] if cut else [])
            parts.extend(f'<td style="{cell}{divider if j == 0 else ""}">{v}</td>' for j, v in enumerate(values))
        parts.append(f'<td style="{cell} {divider}">{difference[r]:.1e}</td></tr>')
    if shown_rows < rows:
        parts.append(f'<tr><td colspan="{2 + 2 * span}" class="attn-more" style="{nowrap} opacity: 0.8;">'
                     f"… {rows - shown_rows} more rows</td></tr>")
    parts.append("</table></div>")
    return "".join(parts)
