"""A compare report as files: report.csv, errors.png and report.json, each whole, and none of an
earlier run's left beside them."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from attn_demos.render.export import replaced_whole, to_jsonable

# The files of a compare report, in the order they are written: report.json last, so that when it
# is there the others are too (each file appears whole: render.export.replaced_whole).
REPORT_FILES = {"csv": "report.csv", "png": "errors.png", "json": "report.json"}
# what a run killed while writing leaves: render.export.temporary_name of those names
REPORT_TEMPORARY = re.compile(r"\.(report|errors)\.[0-9a-f]{8}\.tmp\.(csv|png|json)")


def remove_report_files(folder: str | Path) -> list[Path]:
    """Remove an earlier run's report files from `folder` (and temporary files a killed run left),
    so that no earlier result stays beside a new one or passes for it. Only the names
    write_report_files writes are touched. Returns the paths removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = set(REPORT_FILES.values())
    removed = []
    for path in folder.iterdir():
        if (path.name in names or REPORT_TEMPORARY.fullmatch(path.name)) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)  # several processes of one run may remove at once
            removed.append(path)
    return removed


def write_report_files(report, folder: str | Path, model_name: str | None = None) -> dict[str, Path]:
    """Write report.csv (one row per kind, layer, head), errors.png (render.error_plot) and
    report.json (with the run's facts) into `folder`, in that order, each whole: report.json there
    means the other two are this run's. An earlier run's files are removed first."""
    from attn_demos.render.error_plot import plot_errors  # matplotlib: only once there is a report to draw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_report_files(folder)
    paths = {kind: folder / name for kind, name in REPORT_FILES.items()}
    with replaced_whole(paths["csv"]) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "layer", "head", "max_abs_err", "within_tolerance"])
        for r in report.results:
            for head, err in enumerate(r.heads):
                writer.writerow([r.kind, r.layer, head, f"{err:.3e}", err <= report.tolerance])
    with replaced_whole(paths["png"]) as temporary:
        plot_errors(report, temporary, model_name)
    with replaced_whole(paths["json"]) as temporary:
        temporary.write_text(json.dumps(to_jsonable(report.to_dict()), indent=2, allow_nan=False))
    return paths
