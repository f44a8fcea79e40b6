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
) -> dict[str, Path]:
    """Into `folder`: layer_<l>.png (mean over heads) and layer_<l>_heads.png for each of `layers`
    (layer -> (H, T, T)), rollout.png ((T, T)), report.json and, with `save_maps`, maps.npz
    (layer_<l>, rollout, tokens) in float32. Returns name -> path."""
    paths = {}
    for layer, weights in sorted(layers.items()):  # (H, T, T)
        heads = weights.shape[0]
        title = f"{kind} layer {layer}, mean over {heads} heads"
        paths[f"layer_{layer}"] = export_png(
            pooled_heatmap_image(weights.mean(axis=0), tokens, tokens, title), folder, f"layer_{layer}"
        )
        grid = head_grid_image(weights[None], title=f"{kind} layer {layer}: heads 0–{heads - 1}")
        paths[f"layer_{layer}_heads"] = export_png(grid, folder, f"layer_{layer}_heads")
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
