"""Image tab: top-5 labels and the [CLS] → patch attention drawn over the image, plus rollout."""

from __future__ import annotations

from attn_demos.render.overlay import patch_overlay
from attn_demos.render.panels.common import export_view, head_choices_for, layer_choices, status_text, user_model
from attn_demos.render.patch_table import patch_table_html
from attn_demos.tasks.images import ImageResult, classify_image
from attn_demos.tasks.views import check_badge, parse_head

REDRAW_OUTPUTS = ("status", "badge", "overlay", "rollout", "patches", "png", "json", "numbers")
RUN_OUTPUTS = ("state", "labels", "layers", "heads") + REDRAW_OUTPUTS
FLOW_OUTPUTS = ("status", "flow")  # errors land in the status line


def run(image, layer, head, model: str | None = None) -> dict:
    result = classify_image(image, source=user_model(model))
    return {
        **redraw(result, layer, head),
        "state": result,
        "labels": dict(result.labels),
        "layers": layer_choices(result.num_layers, layer),
        "heads": head_choices_for([h for h in result.head_options() if h != "rollout"], head),
    }


def flow(result: ImageResult | None) -> dict:
    """Attention flow from every patch into [CLS], drawn over the image (seconds: on request only)."""
    if result is None:
        return {"status": "Classify an image first."}
    return {"status": status_text(result.notices, result.model), "flow": patch_overlay(result.image, result.flow_map())}


def redraw(result: ImageResult | None, layer, head) -> dict:
    if result is None:
        return {"status": "Upload an image (or pick an example) and press Classify."}
    head = parse_head(head)
    layer = layer if layer == "mean" else int(layer)
    patch_map = result.cls_patch_map(layer, head)  # (rows, cols)
    overlay = patch_overlay(result.image, patch_map)
    rolled = patch_overlay(result.image, result.cls_patch_map(head="rollout"))
    error = max(result.check_error(layer, head), result.check_error(head="rollout"))
    view = result.view(layer, head)
    png, json_path = export_view(
        view, overlay, {"model": result.model, "grid": list(result.grid), "cls_to_patches": patch_map.tolist()}
    )
    rows, cols = result.grid
    return {
        "status": status_text(result.notices, result.model),
        "badge": check_badge(error),
        "overlay": overlay,
        "rollout": rolled,
        "patches": patch_table_html(patch_map, title=f"[CLS] → each of the {rows}×{cols} patches"),
        "png": png,
        "json": json_path,
        "numbers": {"grid": [rows, cols], "cls_to_patches": patch_map.round(5).tolist()},
    }
