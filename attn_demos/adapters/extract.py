"""Run a model once and get its attention as AttentionMaps, with the from-scratch recomputation
of the same maps taken from the same pass."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from attn_demos.adapters.families import CROSS, DECODER, ENCODER, VISION
from attn_demos.adapters.loading import LoadedModel
from attn_demos.adapters.maps import AttentionMaps, take_layers
from attn_demos.adapters.precision import to_device
from attn_demos.adapters.recompute import (
    PassInputs,
    capture_attention_inputs,
    recompute_weights,
    recorded_projections,
)
from attn_demos.core.masks import positions_from_padding


@dataclass
class Side:
    """One side of the model's input: per-example token labels and a (B, T) real-token mask.

    For a decoder, `tokens` label the decoder inputs (keys) and `produced` the tokens each
    position predicts (queries); for everything else they are the same.
    """

    tokens: list[list[str]]
    mask: torch.Tensor  # (B, T) bool
    produced: list[list[str]] | None = None
    query_real: torch.Tensor | None = None  # (B, T) bool: rows that are data, when fewer than `mask` (after an EOS)

    @property
    def query_tokens(self) -> list[list[str]]:
        return self.produced if self.produced is not None else self.tokens

    @property
    def query_mask(self) -> torch.Tensor:
        return self.mask if self.query_real is None else self.query_real

    def to(self, device: torch.device) -> Side:
        """The same side with its masks on `device`."""
        query_real = None if self.query_real is None else self.query_real.to(device)
        return Side(self.tokens, self.mask.to(device), self.produced, query_real)


@dataclass
class ForwardResult:
    """The model's outputs, its attention per kind, and our recomputation of each kind."""

    outputs: object
    maps: dict[str, AttentionMaps]
    recomputed: dict[str, torch.Tensor]  # kind -> (B, L, H, Tq, Tk)
    max_abs_logit: float = 0.0  # the largest |logit| the recomputation met (precision.tolerance_for)


def token_labels(tokenizer, ids: list[int]) -> list[str]:
    """Token strings for ids; an id the tokenizer does not know (a model's vocabulary can be larger,
    e.g. T5's 32128 rows for 32100 tokens) is labelled "<id N>" rather than None."""
    tokens = tokenizer.convert_ids_to_tokens(ids)
    return [f"<id {i}>" if t is None else t for i, t in zip(ids, tokens)]


def tokenize(loaded: LoadedModel, texts: list[str], max_length: int | None = None, **kwargs):
    """Tokenize a padded batch; returns (model inputs, source Side)."""
    tokenizer = loaded.preprocessor
    limit = max_length or model_max_length(loaded)
    if loaded.is_decoder_only:
        kwargs = {"padding_side": "left", **kwargs}  # generation continues every row at its right end
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=limit, **kwargs)
    if loaded.is_encoder_decoder or loaded.is_decoder_only:
        batch.pop("token_type_ids", None)  # generate() rejects it
    if loaded.is_decoder_only and takes_position_ids(loaded.model):
        batch["position_ids"] = positions_from_padding(batch["attention_mask"])  # (B, T) as generate() counts them
    tokens = [token_labels(tokenizer, ids) for ids in batch["input_ids"].tolist()]
    return batch, Side(tokens, batch["attention_mask"].bool())


def takes_position_ids(model: torch.nn.Module) -> bool:
    """Whether the model's forward takes position_ids (BartForCausalLM and the like do not)."""
    return "position_ids" in inspect.signature(model.forward).parameters


def model_max_length(loaded: LoadedModel) -> int:
    limit = getattr(loaded.preprocessor, "model_max_length", None) or 512
    positions = getattr(loaded.config, "max_position_embeddings", None)
    return int(min(limit, positions or limit, 100_000))


def patch_grid(config) -> tuple[int, int]:
    """(rows, cols) of patches, from the model's own config (image_size may be an int or a pair)."""
    size, patch = config.image_size, config.patch_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else tuple(patch)
    return height // patch_h, width // patch_w


def vision_side(loaded: LoadedModel, batch_size: int) -> Side:
    """Labels for a vision sequence: [CLS] (DeiT: and [DIST]) then one per patch, row-major over the model's own grid."""
    rows, cols = patch_grid(loaded.config)
    tokens = list(loaded.family.prefix_tokens) + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]
    return Side([tokens] * batch_size, torch.ones(batch_size, len(tokens), dtype=torch.bool))


def forward_with_attention(
    loaded: LoadedModel,
    model_inputs: dict,
    source: Side,
    target: Side | None = None,
    recompute: bool = True,
    scale_override: float | None = None,
    logit_size: bool = True,
) -> ForwardResult:
    """One forward pass with output_attentions=True, capturing what enters every attention module.

    Inputs and the sides' masks are moved to the model's device; maps and recomputed weights stay
    there (call .cpu() for numbers). logit_size: measure the largest |logit| (max_abs_logit, for
    precision.tolerance_for; a second q·kᵀ per layer), else leave it 0.0.
    """
    model, family = loaded.model, loaded.family
    device = loaded.device
    source = source.to(device)
    target = None if target is None else target.to(device)
    sites = family.sites(model) if recompute else []
    model_inputs = to_device(model_inputs, device)
    with torch.no_grad(), capture_attention_inputs(sites, recorded_projections(family)) as captured:
        outputs = model(**model_inputs, output_attentions=True, return_dict=True)
    maps = _maps_from_outputs(loaded, outputs, source, target)
    recomputed, largest = {}, 0.0
    if recompute:
        if family.decoder_only:  # one causal stack over the source tokens
            pass_inputs = PassInputs(target_mask=source.mask, position_ids=model_inputs.get("position_ids"))
        else:
            source_mask = None if family.vision else source.mask  # (B, S)
            if source_mask is not None and target is None and bool(source_mask.all()):
                source_mask = None  # an encoder with every token real: nothing to mask (as verify.py)
            pass_inputs = PassInputs(source_mask=source_mask, target_mask=None if target is None else target.mask)
        recomputed, largest = recompute_weights(model, family, sites, captured, pass_inputs, scale_override, logit_size)
    return ForwardResult(outputs, maps, recomputed, largest)


def _maps_from_outputs(loaded, outputs, source: Side, target: Side | None) -> dict[str, AttentionMaps]:
    if loaded.is_encoder_decoder:
        assert target is not None, "an encoder-decoder needs the decoder side"
        return {
            ENCODER: _maps(ENCODER, take_layers(outputs, "encoder_attentions", "encoder"), source, source),
            DECODER: _maps(DECODER, take_layers(outputs, "decoder_attentions", "decoder"), target, target),
            CROSS: _maps(CROSS, take_layers(outputs, "cross_attentions", "cross"), target, source),
        }
    if loaded.is_decoder_only:
        return {DECODER: _maps(DECODER, take_layers(outputs, "attentions", "decoder"), source, source)}
    kind = VISION if loaded.family.vision else ENCODER
    return {kind: _maps(kind, take_layers(outputs, "attentions", kind), source, source)}


def _maps(kind: str, weights: torch.Tensor, query: Side, key: Side) -> AttentionMaps:
    """weights: (B, L, H, Tq, Tk)."""
    return AttentionMaps(kind, weights, query.query_tokens, key.tokens, query.query_mask, key.mask)


def teacher_forced_inputs(model_inputs: dict, sequences: torch.Tensor) -> dict:
    """Decoder inputs for re-running a generated (B, 1+T) sequence: sequences[:, :-1] (B, T)."""
    return {**model_inputs, "decoder_input_ids": sequences[:, :-1]}


def target_side(loaded: LoadedModel, sequences: torch.Tensor) -> Side:
    """Decoder side of generated sequences (B, 1+T): real up to and including the first EOS."""
    tokenizer = loaded.preprocessor
    eos = loaded.config.eos_token_id
    produced_ids = sequences[:, 1:]  # (B, T)
    is_eos = produced_ids == eos  # (B, T)
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # (B, T) strictly after the first EOS
    inputs = [token_labels(tokenizer, ids) for ids in sequences[:, :-1].tolist()]
    produced = [token_labels(tokenizer, ids) for ids in produced_ids.tolist()]
    return Side(inputs, ~after_eos, produced)


def causal_teacher_forced(model_inputs: dict, sequences: torch.Tensor) -> dict:
    """Decoder-only inputs for re-running generated sequences (B, P+N) as generate() ran them:
    sequences[:, :-1], the prompt's padding then ones, and positions counting real tokens (where
    the prompt's inputs had positions: a model whose forward takes none is given none)."""
    prompt_mask = model_inputs["attention_mask"]  # (B, P)
    batch, prompt_length = prompt_mask.shape
    new = sequences.shape[1] - 1 - prompt_length
    mask = torch.cat([prompt_mask, prompt_mask.new_ones(batch, new)], dim=1)  # (B, P+N-1)
    forced = {"input_ids": sequences[:, :-1], "attention_mask": mask}
    if "position_ids" in model_inputs:
        forced["position_ids"] = positions_from_padding(mask)  # (B, P+N-1)
    return forced
