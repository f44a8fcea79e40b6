"""A long input's views as files: heatmaps, a head grid per layer, a report, the maps themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from attn_demos.core.pooling import display_tokens
from attn_demos.render.export import export_json, export_png
from attn_demos.render.heatmap import head_grid_image, pooled_heatmap_image

REPORT_NAME = "report"  # report.json; it lists the other files of its view ("files")
# the names write_view_files gives its files: only these are removed when an earlier report lists them
VIEW_FILE_NAME = re.compile(r"layer_-?[0-9]+(_heads|_head_-?[0-9]+)?\.png|rollout\.png|maps\.npz")


def write_view_files(
    folder: str | Path,
    kind: str,
    tokens: list[str],
    layers: dict[int, np.ndarray],
    rollout: np.ndarray | None,
    report: dict,
    save_maps: bool = False,
    heads: tuple[int, ...] | list[int] = (),
) -> tuple[dict[str, Path], list[Path]]:
    """Into `folder`: layer_<l>.png (mean over heads), layer_<l>_heads.png and layer_<l>_head_<h>.png
    for each of `heads`, for each of `layers` (layer -> (H, T, T)); rollout.png ((T, T)),
    report.json (the report, plus the names of the files written) and, with `save_maps`, maps.npz
    (layer_<l>, rollout, tokens as a person writes them, pieces as the tokenizer wrote them) in float32.
    `tokens` are the tokenizer's pieces; the heatmaps are labelled with display_tokens(tokens).

    A view written before into the same folder left its own report.json: the files it lists that
    this view did not write again are removed, so the folder holds one view. Nothing else in the
    folder is touched: only names of the form this function writes (VIEW_FILE_NAME) are removed.
    Returns (name -> path written, paths removed)."""
    folder = Path(folder)
    paths = {}
    labels = display_tokens(list(tokens))  # (T,) what the heatmaps and maps.npz's tokens read
    for layer, weights in sorted(layers.items()):  # (H, T, T)
        count = weights.shape[0]  # heads of this layer
        title = f"{kind} layer {layer}, mean over {count} heads"
        paths[f"layer_{layer}"] = export_png(
            pooled_heatmap_image(weights.mean(axis=0), labels, labels, title), folder, f"layer_{layer}"
        )
        grid = head_grid_image(weights[None], title=f"{kind} layer {layer}: heads 0–{count - 1}")
        paths[f"layer_{layer}_heads"] = export_png(grid, folder, f"layer_{layer}_heads")
        for head in heads:
            image = pooled_heatmap_image(weights[head], labels, labels, f"{kind} layer {layer}, head {head}")
            paths[f"layer_{layer}_head_{head}"] = export_png(image, folder, f"layer_{layer}_head_{head}")
    if rollout is not None:
        image = pooled_heatmap_image(rollout, labels, labels, f"{kind} attention rollout")
        paths["rollout"] = export_png(image, folder, "rollout")
    if save_maps:
        arrays = {f"layer_{layer}": weights for layer, weights in layers.items()}
        if rollout is not None:
            arrays["rollout"] = rollout
        paths["maps"] = folder / "maps.npz"
        np.savez(paths["maps"], tokens=np.array(labels), pieces=np.array(tokens), **arrays)
    written = sorted(path.name for path in paths.values())
    removed = _remove_earlier_view(folder, keep=set(written))
    paths[REPORT_NAME] = export_json({**report, "files": written}, folder, REPORT_NAME)
    return paths, removed


def _remove_earlier_view(folder: Path, keep: set[str]) -> list[Path]:
    """Remove the files an earlier view's report.json in `folder` lists, except `keep`; a report
    that cannot be read removes nothing. Only names a view writes (VIEW_FILE_NAME: no path parts)
    are considered, so another tool's report.json listing its own files removes none of them."""
    try:
        listed = json.loads((folder / f"{REPORT_NAME}.json").read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError, RecursionError):  # no report, not JSON, not an object, too deep
        return []
    removed = []
    for name in listed if isinstance(listed, list) else []:
        if not isinstance(name, str) or name in keep or not VIEW_FILE_NAME.fullmatch(name):
            continue
        path = folder / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed
