"""A patch-attention map laid over the image it came from (ViT: [CLS] -> patches)."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw


def patch_overlay(
    image: Image.Image,
    patch_scores: np.ndarray,
    alpha: float = 0.5,
    cmap: str = "inferno",
    size: tuple[int, int] | None = None,
    smooth: bool = False,
    grid_lines: bool = False,
) -> Image.Image:
    """Blend patch_scores (n_rows, n_cols) over image; returns an RGB image.

    size: (width, height) to resize the image to first (e.g. the model's input size); None keeps
    the original. Scores are divided by their maximum; each patch covers its share of the image
    (any grid shape, square or not). The colour is blended in with opacity alpha × score, so
    patches with no attention show the photo unchanged and the most attended one is alpha-opaque.
    smooth: bilinear upsampling instead of hard patch edges. grid_lines: draw patch borders.
    """
    scores = np.asarray(patch_scores, dtype=np.float64)  # (n_rows, n_cols)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"patch scores must be a (rows, cols) grid, got shape {scores.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    picture = image.convert("RGB")
    if size is not None:
        picture = picture.resize(size, Image.Resampling.BICUBIC)
    width, height = picture.size
    n_rows, n_cols = scores.shape

    clean = np.clip(np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)  # (n_rows, n_cols)
    top = clean.max()
    weights = clean / top if top > 0 else clean  # (n_rows, n_cols) in [0, 1]
    resample = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    upsampled = Image.fromarray(weights.astype(np.float32)).resize((width, height), resample)  # mode "F"
    weight = np.clip(np.asarray(upsampled, dtype=np.float64), 0.0, 1.0)  # (H, W)

    colours = colormaps[cmap](weight)[..., :3] * 255.0  # (H, W, 3)
    photo = np.asarray(picture, dtype=np.float64)  # (H, W, 3)
    opacity = (alpha * weight)[..., None]  # (H, W, 1)
    blended = photo * (1.0 - opacity) + colours * opacity  # (H, W, 3)
    result = Image.fromarray(np.round(blended).astype(np.uint8))

    if grid_lines:
        draw = ImageDraw.Draw(result)
        for c in range(1, n_cols):
            x = round(c * width / n_cols)
            draw.line([(x, 0), (x, height - 1)], fill=(255, 255, 255), width=1)
        for r in range(1, n_rows):
            y = round(r * height / n_rows)
            draw.line([(0, y), (width - 1, y)], fill=(255, 255, 255), width=1)
    return result
