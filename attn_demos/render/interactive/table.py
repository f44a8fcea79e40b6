"""A numbers table that stays small: only the first rows (and columns) of a big matrix, saying so."""

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
