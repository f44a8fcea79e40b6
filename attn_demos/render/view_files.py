"""A long input's views as files: heatmaps, a head grid per layer, a report, the maps themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attn_demos.render.export import export_json, export_png
from attn_demos.render.heatmap import head_grid_image, pooled_heatmap_image


def write_view_files(
    folder: str | Path,
    kind: str,
    tokens: list[str],
    layers: dict[int, np.ndarray],
    rollout: np.ndarray | None,
    report: dict,
    save_maps: bool = False,
    heads: tuple[int, ...] | list[int] = (),
) -> dict[str, Path]:
    """Into `folder`: layer_<l>.png (mean over heads), layer_<l>_heads.png and layer_<l>_head_<h>.png
    for each of `heads`, for each of `layers` (layer -> (H, T, T)); rollout.png ((T, T)),
    report.json and, with `save_maps`, maps.npz (layer_<l>, rollout, tokens) in float32.
    Returns name -> path."""
    paths = {}
    for layer, weights in sorted(layers.items()):  # (H, T, T)
        count = weights.shape[0]  # heads of this layer
        title = f"{kind} layer {layer}, mean over {count} heads"
        paths[f"layer_{layer}"] = export_png(
            pooled_heatmap_image(weights.mean(axis=0), tokens, tokens, title), folder, f"layer_{layer}"
        )
        grid = head_grid_image(weights[None], title=f"{kind} layer {layer}: heads 0–{count - 1}")
        paths[f"layer_{layer}_heads"] = export_png(grid, folder, f"layer_{layer}_heads")
        for head in heads:
            image = pooled_heatmap_image(weights[head], tokens, tokens, f"{kind} layer {layer}, head {head}")
            paths[f"layer_{layer}_head_{head}"] = export_png(image, folder, f"layer_{layer}_head_{head}")
    if rollout is not None:
        image = pooled_heatmap_image(rollout, tokens, tokens, f"{kind} attention rollout")
        paths["rollout"] = export_png(image, folder, "rollout")
    paths["report"] = export_json(report, folder, "report")
    if save_maps:
        arrays = {f"layer_{layer}": weights for layer, weights in layers.items()}
        if rollout is not None:
            arrays["rollout"] = rollout
        paths["maps"] = Path(folder) / "maps.npz"
        np.savez(paths["maps"], tokens=np.array(tokens), **arrays)
    return paths
