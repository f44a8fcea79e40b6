"""Views of one long input without every layer's maps: chosen layers and a rollout, verified.

The tabs keep every layer's maps of a run, so they cut long inputs to the maps budget
(tasks/inputs.py). Here the model runs once with reducers (adapters/reduce.py): each chosen
layer's heads are kept, a rollout is built layer by layer, and every other layer is checked and
dropped. The budget then bounds what is kept (a few layers), not every layer, so an input can be
as long as the model reads.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from attn_demos.adapters.attention_function import AT_FUNCTION, FROM_WEIGHTS
from attn_demos.adapters.extract import Side, vision_side
from attn_demos.adapters.families import DECODER, ENCODER, VISION, head_count
from attn_demos.adapters.loading import LoadedModel, choose_depth, load_config, load_model
from attn_demos.adapters.precision import resolve_device, tolerance_for
from attn_demos.adapters.reduce import KeepLayer, Rollout, reduce_at_function, reduce_attention
from attn_demos.adapters.verify import OUTPUT_PROJECTION, working_dtype
from attn_demos.core.aggregate import FUSIONS
from attn_demos.core.pooling import display_tokens
from attn_demos.errors import BadInputError
from attn_demos.tasks import registry
from attn_demos.tasks.comparison import pixel_values
from attn_demos.tasks.inputs import MAPS_BUDGET_ENV, maps_budget_mb, tokenize_text
from attn_demos.tasks.registry import display_name, model_notices, resolve, sdpa_checkable

ROLLOUT_MAPS = 2  # a rollout holds its product so far and the newest layer's fused map


@dataclass
class LongInputResult:
    """What one verified pass kept: the chosen layers' maps, a rollout, every layer's check."""

    model: str
    kind: str  # the self-attention shown: "encoder", "decoder" (decoder-only) or "vision"
    tokens: list[str]
    layers: dict[int, np.ndarray]  # layer -> (H, T, T), the core's weights
    rollout: np.ndarray | None  # (T, T)
    errors: np.ndarray  # (L, H): each head's relative output error
    tolerance: float
    heads: list[int] = field(default_factory=list)  # heads to show one by one, of each kept layer
    notices: list[str] = field(default_factory=list)
    run: dict = field(default_factory=dict)  # device, dtype, attn_implementation, seconds, kept_mb

    @property
    def ok(self) -> bool:
        return bool(np.all(self.errors <= self.tolerance))  # a NaN error fails

    def report(self) -> dict:
        """Everything but the maps: the run, the tokens and every head's check."""
        return {
            "model": self.model,
            "kind": self.kind,
            "ok": self.ok,
            "tolerance": self.tolerance,
            "max_relative_output_error": float(np.max(self.errors)),
            "relative_output_error": self.errors,  # (L, H)
            "layers_kept": sorted(self.layers),
            "heads_shown": self.heads,
            "rollout": self.rollout is not None,
            "run": self.run,
            "notices": self.notices,
            "tokens": display_tokens(self.tokens),  # as a person writes them; the tokenizer's pieces below
            "pieces": self.tokens,
        }


def view_long_input(
    source: str,
    text: str | None = None,
    image=None,
    layers: tuple[int, ...] = (),
    heads: tuple[int, ...] = (),
    rollout: bool = False,
    fusion: str = "mean",
    dtype: str = "float32",
    device: str | None = None,
    attn_implementation: str | None = None,
    budget_mb: float | None = None,
    progress: bool = False,
) -> LongInputResult:
    """Run `source` once on `text` (or a PIL `image`) and keep `layers` (negative: from the end)
    and, with `rollout`, the rollout over heads fused by `fusion`; none asked: the last layer and
    the rollout. `heads` names heads of the kept layers to show one by one (checked before the
    pass). What is kept must fit `budget_mb` (None: the settings' maps budget). attn_implementation:
    auto (sdpa, or eager for a model whose sdpa output cannot be checked; hardware's rule), eager
    or sdpa (None: the settings')."""
    if (text is None) == (image is None):
        raise BadInputError("give a text or an image")
    if fusion not in FUSIONS:
        raise BadInputError(f"unknown head fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
    device = resolve_device(device)  # None: the settings' device (auto: cuda when there is one)
    resolved = resolve(source)  # a Hub id or folder; the embedded MiniLM's name -> its folder
    config = load_config(resolved)  # what cannot be viewed is refused before any weight is read
    if getattr(config, "is_encoder_decoder", False):
        raise BadInputError(
            "view shows one stack's self-attention (encoder-only, decoder-only or vision models); for an "
            "encoder-decoder use `attn-demos compare` or the Translation and Summarization tabs"
        )
    attn_implementation = registry.attn_implementation("view", resolved, device, attn_implementation)
    _refuse_unverifiable(resolved, config, attn_implementation)
    loaded = load_model(resolved, dtype=dtype, device=device, attn_implementation=attn_implementation)
    at_function = loaded.depth == AT_FUNCTION
    sites = [] if at_function else loaded.family.sites(loaded.model)
    kind, layer_heads = _layout(loaded, sites)
    count = len(layer_heads)
    if not layers and not rollout:
        layers, rollout = (-1,), True
    chosen = _chosen(layers, count, "layer", f"this model has {count} layers")
    if heads and not chosen:
        raise BadInputError("heads are shown of the kept layers: keep a layer too")
    per_layer = layer_heads[chosen[0]] if chosen else 0
    shown = _chosen(heads, per_layer, "head", f"this model's layers have {per_layer} heads")
    inputs, side, notices = _model_inputs(loaded, text, image)
    length = len(side.tokens[0])
    _check_budget(loaded, layer_heads, chosen, rollout, length, budget_mb)

    keep = [KeepLayer(kind, layer) for layer in chosen]
    rolled = Rollout(kind, fusion) if rollout else None
    reducers = keep + ([rolled] if rolled else [])
    started = time.perf_counter()
    with _progress_bar(sites, progress):
        if at_function:
            errors = reduce_at_function(loaded, inputs, reducers)
        else:
            errors = reduce_attention(loaded, inputs, side, reducers).errors
    seconds = time.perf_counter() - started
    return LongInputResult(
        model=source,
        kind=kind,
        tokens=side.tokens[0],
        layers={r.layer: r.weights[0].float().cpu().numpy() for r in keep},  # (H, T, T) each
        rollout=None if rolled is None else rolled.joint[0].float().cpu().numpy(),  # (T, T)
        heads=shown,
        errors=errors[kind][0].numpy(),  # (L, H)
        tolerance=tolerance_for(dtype),
        notices=model_notices(loaded) + notices,
        run={
            "device": str(loaded.device),
            "dtype": dtype,
            "attn_implementation": attn_implementation,
            "tokens": length,
            "layers": count,
            "seconds": round(seconds, 3),
            "kept_mb": round(kept_bytes(loaded, layer_heads, chosen, rollout, length) / 2**20, 1),
            "depth": loaded.depth,
        },
    )


def _layout(loaded: LoadedModel, sites: list) -> tuple[str, list[int]]:
    """(the kind shown, heads of each of its layers): from the modules (from weights), or from the
    text config, one layer per call of the attention function (at the attention function)."""
    if sites:
        return sites[0].kind, [head_count(site.module, loaded.config) for site in sites]
    text = loaded.config.get_text_config()
    kind = DECODER if loaded.is_decoder_only else VISION if loaded.family.vision else ENCODER
    return kind, [int(text.num_attention_heads)] * int(text.num_hidden_layers)


def _refuse_unverifiable(resolved: str, config, attn_implementation: str) -> None:
    """View checks every layer by its module's output (on either kernel): from weights, a family
    without a known output projection cannot be viewed; one without an sdpa kernel only on eager.
    At the attention function the output checked is the function's own: no projection is needed."""
    family, depth, _ = choose_depth(config)
    if depth == FROM_WEIGHTS and family.name not in OUTPUT_PROJECTION:
        raise BadInputError(
            f"family {family.name!r} has no known output projection, so view cannot check its layers on any "
            "kernel; use `attn-demos compare` or the tabs (eager, every layer's maps)"
        )
    if attn_implementation == "sdpa" and not sdpa_checkable(resolved):
        raise BadInputError(f"family {family.name!r} has no sdpa kernel in transformers; use --attn-implementation eager")


def _chosen(numbers: tuple[int, ...], count: int, noun: str, there: str) -> list[int]:
    """Layer or head numbers from 0, in the order given, each once; -1 is the last of `count`."""
    chosen = []
    for number in numbers:
        if not -count <= number < count:
            raise BadInputError(f"{noun} {number} does not exist: {there} (0–{count - 1}, or -1 for the last)")
        if number % count not in chosen:
            chosen.append(number % count)
    return chosen


def _model_inputs(loaded: LoadedModel, text: str | None, image) -> tuple[dict, Side, list[str]]:
    if loaded.family.vision:
        if image is None:
            raise BadInputError(f"{display_name(loaded.source)} is a vision model: give an image, not a text")
        pixels = pixel_values(loaded, [image]).to(loaded.dtype)  # (1, 3, H, W)
        return {"pixel_values": pixels}, vision_side(loaded, 1), []
    if text is None:
        raise BadInputError(f"{display_name(loaded.source)} reads text: give a text, not an image")
    return tokenize_text(loaded, text, every_layer=False)


def kept_bytes(loaded: LoadedModel, layer_heads: list[int], chosen: list[int], rollout: bool, length: int) -> int:
    """What the view keeps at its peak, in the working dtype (float32 for half precision, float64
    for float64): each chosen layer's heads (layer_heads: heads of each layer), and the rollout's maps."""
    heads = sum(layer_heads[layer] for layer in chosen)
    cell_bytes = working_dtype(loaded.dtype).itemsize
    return (heads + (ROLLOUT_MAPS if rollout else 0)) * length * length * cell_bytes


def _check_budget(loaded: LoadedModel, layer_heads: list[int], chosen: list[int], rollout: bool, length: int, budget_mb) -> None:
    budget = maps_budget_mb() if budget_mb is None else budget_mb
    needed = kept_bytes(loaded, layer_heads, chosen, rollout, length)
    if needed > budget * 2**20:
        per_token_squared = needed / length**2  # bytes
        fits = math.isqrt(int(budget * 2**20 / per_token_squared))
        raise BadInputError(
            f"the maps this view keeps at {length:,} tokens take {needed / 2**20:,.0f} MB, over the {budget:g} MB "
            f"budget ({MAPS_BUDGET_ENV} or --maps-budget-mb); fewer layers or about {fits:,} tokens would fit"
        )


@contextmanager
def _progress_bar(sites: list, shown: bool):
    """A bar that moves as each attention module runs (stderr), for a long pass in a terminal.
    Its hooks are added and removed around the one pass: for the CLI, not for a model that
    other threads run at the same time."""
    if not shown:
        yield
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sites), desc="layers", unit="layer", leave=False)

    def tick(*_) -> None:  # a forward hook that returned a value would replace the module's output
        bar.update()

    handles = [site.module.register_forward_hook(tick) for site in sites]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        bar.close()
