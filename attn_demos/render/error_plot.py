"""A picture of a comparison: max |Δ| per layer (rows) and head (columns), one panel per kind."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402


def plot_errors(report, path: str | Path, model_name: str | None = None) -> Path:
    """Save a log-scale heatmap of per-head errors for every kind in `report` (a ComparisonReport),
    titled with `model_name` (the caller's display name: never a server path) or report.model."""
    kinds = list(dict.fromkeys(r.kind for r in report.results))
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds) + 1, 3.2), squeeze=False)
    floor = 1e-17  # exact agreement (0.0) drawn at the bottom of the scale
    for ax, kind in zip(axes[0], kinds):
        rows = [r for r in report.results if r.kind == kind]
        grid = np.array([r.heads for r in sorted(rows, key=lambda r: r.layer)]) + floor  # (L, H)
        image = ax.imshow(grid, norm=LogNorm(vmin=floor, vmax=max(report.tolerance * 10, grid.max())), cmap="viridis")
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        for (layer, head), value in np.ndenumerate(grid):
            if value - floor > report.tolerance:
                ax.text(head, layer, "✗", ha="center", va="center", color="red", fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="max |Δ| (log)")
    verdict = "match" if report.ok else "MISMATCH"
    fig.suptitle(f"{model_name or report.model}: {verdict} (tolerance {report.tolerance:g})", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report_files(report, folder: str | Path, model_name: str | None = None) -> dict[str, Path]:
    """Write report.json, report.csv (one row per kind, layer, head) and errors.png into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "csv": folder / "report.csv", "png": folder / "errors.png"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "layer", "head", "max_abs_err", "within_tolerance"])
        for r in report.results:
            for head, err in enumerate(r.heads):
                writer.writerow([r.kind, r.layer, head, f"{err:.3e}", err <= report.tolerance])
    plot_errors(report, paths["png"], model_name)
    return paths
