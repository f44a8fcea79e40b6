"""What attention capture costs: forward and generate() with attention ÷ plain sdpa calls, the
extraction with from-scratch recomputation, and the torch core against SDPA."""

from __future__ import annotations

import statistics
import time

import torch

from benchmark.models import decoder_only_models, image_inputs, side_of, text_inputs
from benchmark.report import Metric, at_most, metric
from benchmark.sizes import Sizes
from benchmark.timing import as_eager, as_sdpa, interleaved

FORWARD_GOAL = 1.10
GENERATE_GOAL = 1.15
CORE_GOAL = 1.3


def encoder_cases(models, sizes: Sizes):
    """(name, loaded, inputs, size label) for the encoder-only models."""
    for name in ("minilm", "distilbert"):
        tokens = sizes.text_tokens[name]
        yield name, models[name], text_inputs(models[name], tokens), {"tokens": tokens}
    vit = models["vit"]
    yield "vit", vit, image_inputs(vit), {"image_px": vit.config.image_size}


def forward_cases(models, sizes: Sizes):
    """encoder_cases, then the decoder-only models that attn-demos supports."""
    yield from encoder_cases(models, sizes)
    for name in decoder_only_models(models):
        tokens = sizes.text_tokens[name]
        yield name, models[name], text_inputs(models[name], tokens), {"tokens": tokens}


def forward_capture(models, sizes: Sizes) -> list[Metric]:
    """Forward with attention capture (eager, output_attentions) ÷ plain forward (sdpa)."""
    found = []
    for name, loaded, inputs, size in forward_cases(models, sizes):
        result = interleaved(*forward_pair(loaded.model, inputs), sizes.repeats)
        found.append(
            metric(f"forward_capture_ratio/{name}", result["ratio"], "×", at_most(FORWARD_GOAL), **size, **result)
        )
    return found


def forward_pair(model, inputs):
    """(capture, plain): what attn-demos runs, and what a user runs without it."""

    def capture():
        out = model(**inputs, output_attentions=True)
        assert out.attentions and out.attentions[0] is not None, "no attention captured"
        seen = out.attentions[0].shape[-1]
        assert seen == expected_length(model, inputs), f"the model saw {seen} positions"
        return out

    return as_eager(model, capture), as_sdpa(model, lambda: model(**inputs))


def expected_length(model, inputs: dict) -> int:
    """Tokens the inputs hold, or [CLS] + patches for an image of the config's size."""
    if "input_ids" in inputs:
        return inputs["input_ids"].shape[1]
    side = inputs["pixel_values"].shape[-1] // model.config.patch_size  # (1, 3, H, W)
    return 1 + side * side


def extraction(models, sizes: Sizes) -> list[Metric]:
    """forward_with_attention(recompute=True) ÷ plain forward (sdpa), and the sdpa verification
    (every layer checked through the module's output, no weights kept) ÷ the same."""
    found = []
    for name, loaded, inputs, size in encoder_cases(models, sizes):
        result = interleaved(*extraction_pair(loaded, inputs), sizes.repeats)
        found.append(metric(f"extract_recompute_ratio/{name}", result["ratio"], "×", None, **size, **result))
        result = interleaved(*verification_pair(loaded, inputs), sizes.repeats)
        found.append(
            metric(f"sdpa_verify_ratio/{name}", result["ratio"], "×", at_most(FORWARD_GOAL), **size, **result)
        )
        share = attention_share(loaded, inputs, sizes.repeats)
        found.append(metric(f"sdpa_attention_share/{name}", share, "of the forward", None, **size))
    return found


def attention_share(loaded, inputs, repeats: int) -> float:
    """Median share of a plain sdpa forward spent inside scaled_dot_product_attention (the CPU
    runs it synchronously). Recomputing every layer's attention to verify it costs about as much
    again, so 1 + this share is the sdpa verification's floor."""
    fused = torch.nn.functional.scaled_dot_product_attention
    inside = [0.0]  # seconds spent in the fused kernel during the current forward

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fused(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - start

    plain = as_sdpa(loaded.model, lambda: loaded.model(**inputs))
    plain()  # warm-up
    shares = []
    torch.nn.functional.scaled_dot_product_attention = timed  # transformers looks it up at each call
    try:
        for _ in range(repeats):
            inside[0] = 0.0
            start = time.perf_counter()
            plain()
            shares.append(inside[0] / (time.perf_counter() - start))
    finally:
        torch.nn.functional.scaled_dot_product_attention = fused
    return statistics.median(shares)


def verification_pair(loaded, inputs):
    """(the sdpa forward verified site by site, the plain sdpa forward)."""
    from attn_demos.adapters.verify import forward_with_verification

    side = side_of(loaded, inputs)
    verify = as_sdpa(loaded.model, lambda: forward_with_verification(loaded, inputs, side, keep_weights=False))
    return verify, as_sdpa(loaded.model, lambda: loaded.model(**inputs))


def extraction_pair(loaded, inputs):
    from attn_demos.adapters.extract import forward_with_attention

    side = side_of(loaded, inputs)
    extract = as_eager(loaded.model, lambda: forward_with_attention(loaded, inputs, side, recompute=True))
    return extract, as_sdpa(loaded.model, lambda: loaded.model(**inputs))


def generation(models, sizes: Sizes) -> list[Metric]:
    """generate() with attention capture ÷ plain generate(), fixed output length."""
    found = []
    cases = [(name, sizes.source_tokens[name]) for name in ("marian", "bart", "t5")]
    cases += [(name, sizes.text_tokens[name]) for name in decoder_only_models(models)]
    for name, tokens in cases:
        loaded = models[name]
        inputs = text_inputs(loaded, tokens)
        for beams in (1, 4):
            result = interleaved(*generate_pair(loaded.model, inputs, beams, sizes.new_tokens), sizes.repeats)
            search = "greedy" if beams == 1 else f"beam{beams}"
            found.append(
                metric(
                    f"generate_capture_ratio/{name}/{search}",
                    result["ratio"],
                    "×",
                    at_most(GENERATE_GOAL),
                    input_tokens=tokens,
                    new_tokens=sizes.new_tokens,
                    **result,
                )
            )
    return found


def generate_pair(model, inputs, beams: int, new_tokens: int):
    """(capture, plain) generate() calls that always produce exactly `new_tokens` tokens."""
    fixed = dict(num_beams=beams, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    prompt = inputs["input_ids"].shape[1]

    def capture():
        out = model.generate(**inputs, **fixed, output_attentions=True, return_dict_in_generate=True)
        captured = out.cross_attentions if model.config.is_encoder_decoder else out.attentions
        assert captured, "no attention captured"
        produced = out.sequences.shape[1] - (1 if model.config.is_encoder_decoder else prompt)
        assert produced == new_tokens, f"generated {produced} tokens, not {new_tokens}"
        return out

    return as_eager(model, capture), as_sdpa(model, lambda: model.generate(**inputs, **fixed))


def core_attention(sizes: Sizes) -> list[Metric]:
    """attn_demos.core.torch_attention.fast_attention (returns weights; what the verification runs)
    ÷ torch SDPA (does not)."""
    from attn_demos.core.torch_attention import fast_attention

    generator = torch.Generator().manual_seed(0)
    shape = (1, sizes.core_heads, sizes.core_length, sizes.core_dim)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))  # (1, H, N, d)
    with torch.no_grad():
        result = interleaved(
            lambda: fast_attention(q, k, v),
            lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v),
            max(sizes.repeats, 15),
            warmup=3,
        )
    size = dict(length=sizes.core_length, heads=sizes.core_heads, head_dim=sizes.core_dim)
    return [metric("core_attention_vs_sdpa", result["ratio"], "×", at_most(CORE_GOAL), **size, **result)]
