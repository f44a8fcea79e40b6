"""A picture of a comparison: max |Δ| per layer (rows) and head (columns), one panel per kind."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402


def plot_errors(report, path: str | Path, model_name: str | None = None) -> Path:
    """Save per-head errors (layers × heads, one panel per kind) and the error by layer, titled
    with `model_name` (the caller's display name: never a server path) or report.model.

    The colour scale is logarithmic over the range the cells actually span (and the tolerance),
    so cells that differ look different; the tolerance is a line on the colour bar and on the
    by-layer plot, and every head beyond it carries a red ✗.
    """
    kinds = list(dict.fromkeys(r.kind for r in report.results))
    grids = {kind: _grid(report, kind) for kind in kinds}  # kind -> (L, H)
    low, high = _log_range(np.concatenate([g.ravel() for g in grids.values()]), report.tolerance)
    fig, axes = plt.subplots(1, len(kinds) + 1, figsize=(3.2 * (len(kinds) + 1) + 1, 3.4), squeeze=False)
    norm = LogNorm(vmin=low, vmax=high)
    for ax, kind in zip(axes[0], kinds):
        grid = grids[kind]
        image = ax.imshow(np.clip(grid, low, None), norm=norm, cmap="viridis", aspect="auto")
        ax.set_title(kind, fontsize=9)
        ax.set_xticks(range(grid.shape[1]))
        ax.set_yticks(range(grid.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        for (layer, head), value in np.ndenumerate(grid):
            if value > report.tolerance:
                ax.text(head, layer, "✗", ha="center", va="center", color="red", fontsize=8)
    bar = fig.colorbar(image, ax=axes[0, :-1].tolist(), shrink=0.8, label=f"max |Δ| (log; 0 drawn at {low:.0e})")
    bar.ax.axhline(report.tolerance, color="red", linewidth=1.5)
    _plot_by_layer(axes[0, -1], grids, report.tolerance, low)
    verdict = "match" if report.ok else "MISMATCH"
    run = getattr(report, "run", {}) or {}
    facts = ", ".join(str(run[k]) for k in ("device", "dtype", "attn_implementation") if run.get(k))
    title = model_name or report.model
    fig.suptitle(f"{title}: {verdict} (tolerance {report.tolerance:g}{'; ' + facts if facts else ''})", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _grid(report, kind: str) -> np.ndarray:
    rows = sorted((r for r in report.results if r.kind == kind), key=lambda r: r.layer)
    return np.array([r.heads for r in rows], dtype=float)  # (L, H)


def _log_range(values: np.ndarray, tolerance: float) -> tuple[float, float]:
    """(low, high) of a log scale spanning the nonzero errors and the tolerance."""
    nonzero = values[values > 0]
    low = min(nonzero.min(), tolerance) / 2 if nonzero.size else tolerance / 1e3
    high = max(values.max(initial=0.0), tolerance) * 2
    return low, high


def _plot_by_layer(ax, grids: dict[str, np.ndarray], tolerance: float, low: float) -> None:
    """Worst head per layer, one line per kind, log y, the tolerance as a dashed red line."""
    for kind, grid in grids.items():
        ax.plot(range(grid.shape[0]), np.clip(grid.max(axis=1), low, None), marker="o", label=kind)
    ax.axhline(tolerance, color="red", linestyle="--", linewidth=1, label="tolerance")
    ax.set_yscale("log")
    ax.set_xticks(range(max(g.shape[0] for g in grids.values())))
    ax.set_xlabel("layer")
    ax.set_ylabel("max |Δ| over heads")
    ax.set_title("error by layer", fontsize=9)
    ax.legend(fontsize=7)
