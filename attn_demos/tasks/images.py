"""Image patches (ViT): top-5 labels and the attention of [CLS] (or of any patch) over the model's own patch grid."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from attn_demos import settings
from attn_demos.adapters.extract import patch_grid, vision_side
from attn_demos.adapters.families import VISION
from attn_demos.adapters.loading import LoadedModel
from attn_demos.core.aggregate import rollout_rows
from attn_demos.core.flow import attention_flow
from attn_demos.errors import BadInputError
from attn_demos.tasks.checked import checked_forward
from attn_demos.tasks.hardware import on_gpu
from attn_demos.tasks.registry import display_name, get_model, model_notices
from attn_demos.tasks.views import SelectedMap, SelfAttentionStack, heads_error, select, select_map

MAX_SIDE = 1024  # larger images are downscaled first: memory stays bounded
MIN_SIDE = 2


@dataclass
class ImageResult(SelfAttentionStack):
    model: str
    image: Image.Image  # RGB, as shown (downscaled if it was huge)
    labels: list[tuple[str, float]]  # top-5 (label, probability)
    grid: tuple[int, int]  # (rows, cols) of patches
    library: np.ndarray | None  # (L, H, 1+N, 1+N): [CLS] then patches row-major; None under sdpa
    recomputed: np.ndarray  # (L, H, 1+N, 1+N)
    tokens: list[str]
    notices: list[str] = field(default_factory=list)
    output_errors: np.ndarray | None = None  # (L, H) sdpa: relative output error per layer and head

    @property
    def prefix(self) -> int:
        """Tokens before the patches: [CLS] (DeiT: and its distillation token)."""
        return len(self.tokens) - self.grid[0] * self.grid[1]

    def patch_map(self, layer: int | str = "mean", head: int | str = "mean", query: int = 0) -> np.ndarray:
        """(rows, cols): how much token `query` ([CLS] = 0; patch i = prefix + i) attends to each
        patch (rollout if head == "rollout")."""
        return self._row(self.shown, layer, head, query)[self.prefix :].reshape(self.grid)

    def cls_patch_map(self, layer: int | str = "mean", head: int | str = "mean") -> np.ndarray:
        """(rows, cols): how much [CLS] attends to each patch (rollout if head == "rollout")."""
        return self.patch_map(layer, head, 0)

    def flow_map(self, progress=None, cancelled=None) -> np.ndarray:
        """(rows, cols): attention flow from each patch into [CLS] through every layer (max-flow);
        progress(done, total) and cancelled() as in core.flow.attention_flow."""
        flow = attention_flow(self.shown, query_index=0, progress=progress, cancelled=cancelled)  # (T,)
        return flow[self.prefix :].reshape(self.grid)

    def check_error(self, layer: int | str = "mean", head: int | str = "mean", query: int = 0) -> float:
        """|library − recomputed| on the row being drawn (eager); under sdpa the worst relative
        output error of the heads it is made of (the check's `measure`)."""
        if self.library is None:
            return heads_error(self.output_errors, layer, head)
        drawn, check = (self._row(weights, layer, head, query) for weights in (self.library, self.recomputed))
        return float(np.abs(drawn - check).max())

    def view(self, layer: int | str = 0, head: int | str = "mean") -> SelectedMap:
        """The full patch × patch matrix (for export), or rolled out."""
        return select_map(
            "vision self-attention", self.library, self.recomputed, self.tokens, self.tokens, layer, head,
            output_errors=self.output_errors,
        )

    def _row(self, weights: np.ndarray, layer, head, query: int) -> np.ndarray:
        """(P+N,) row `query` alone: of the rollout, or of that query's rows of the layer and head."""
        if not 0 <= query < len(self.tokens):
            raise BadInputError(f"choose a query between 0 ([CLS]) and {len(self.tokens) - 1}")
        query = int(query)
        if head == "rollout":
            return rollout_rows(weights, query)  # (P+N,)
        return select(weights[:, :, query : query + 1], layer, head)[0]  # (P+N,)


def load_image(image) -> tuple[Image.Image, list[str]]:
    """A PIL image, numpy array, file path or file bytes -> bounded RGB image and notices; clear errors.
    The pixels are counted from the file's header before anything is decoded (settings' max_image_pixels)."""
    notices = []
    if image is None:
        raise BadInputError("No image: upload one or pick an example.")
    if isinstance(image, (str, os.PathLike)) and not os.path.exists(image):
        raise BadInputError("The file is not a readable image: it is not there (an upload is kept a short while: upload it again).")
    try:
        if isinstance(image, (bytes, bytearray)):
            image = io.BytesIO(image)  # the file's content, not its name
        if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):
            image = Image.open(image)  # reads the header only
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        original = image.size
        image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at reduced size; only works before load()
        _check_pixels(image.size)  # what load() would decode
        image.load()
        if max(image.size) > MAX_SIDE:
            image = image.resize(_within(image.size, MAX_SIDE))  # a new, small image: no full-size copy
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise BadInputError(
            f"The image has too many pixels to open safely: more than {2 * Image.MAX_IMAGE_PIXELS:,} "
            f"(this app opens at most {settings.limit('max_image_pixels')})."
        ) from None
    except (OSError, UnidentifiedImageError, ValueError, TypeError):
        raise BadInputError("The file is not a readable image (corrupt or unsupported format).") from None
    if min(original) < MIN_SIDE:
        raise BadInputError(f"The image is {original[0]}×{original[1]} pixels: too small to show patches.")
    if image.mode != "RGB":
        if "A" in image.getbands():  # transparency: flatten onto white
            background = Image.new("RGB", image.size, "white")
            background.paste(image, mask=image.convert("RGBA").getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
    if max(original) > MAX_SIDE:
        notices.append(f"Image downscaled from {original[0]}×{original[1]} to {image.size[0]}×{image.size[1]}.")
    width, height = image.size
    if max(width, height) / min(width, height) > 3:
        notices.append("A very wide or tall image is squeezed to the model's square input.")
    return image, notices


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > settings.current().max_image_pixels:
        raise BadInputError(
            f"The image decodes to {width}×{height} = {width * height:,} pixels; "
            f"this app opens at most {settings.limit('max_image_pixels')}."
        )


def _within(size: tuple[int, int], side: int) -> tuple[int, int]:
    """`size` scaled to fit a side × side square, keeping its shape, at least 1 pixel each way (a
    5000 × 2 image becomes 1024 × 1, not 1024 × 0)."""
    scale = side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


@on_gpu
def classify_image(image, source: str | None = None) -> ImageResult:
    """Top-5 labels of `image` and the attention of the pass that produced them."""
    loaded = get_model("classify_image", source)
    if not loaded.family.vision:
        raise BadInputError(f"{display_name(loaded.source)} is not an image model")
    image, notices = load_image(image)
    pixels = loaded.preprocessor(images=[image], return_tensors="pt")["pixel_values"]  # (1, 3, H, W)
    pixels = pixels.to(next(loaded.model.parameters()).dtype)
    side = vision_side(loaded, batch_size=1)
    checked = checked_forward(loaded, {"pixel_values": pixels}, side)
    stack = checked.stack(VISION)
    return ImageResult(
        model=loaded.source,
        image=image,
        labels=top_labels(loaded, checked.outputs.logits[0]),
        grid=patch_grid(loaded.config),
        library=stack.library,  # (L, H, 1+N, 1+N) or None (sdpa)
        recomputed=stack.recomputed,
        tokens=side.tokens[0],
        notices=model_notices(loaded) + notices,
        output_errors=stack.output_errors,
    )


def top_labels(loaded: LoadedModel, logits: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
    """(label, probability) of the k most likely classes."""
    probabilities = torch.softmax(logits.double(), dim=-1)  # (num_labels,)
    top = torch.topk(probabilities, min(k, probabilities.shape[0]))
    names = loaded.config.id2label
    return [(names.get(int(i), str(int(i))), float(p)) for p, i in zip(top.values, top.indices)]
