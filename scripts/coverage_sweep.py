#!/usr/bin/env python
"""Which of transformers' architectures `compare` verifies, and at which depth.

For every architecture of transformers' causal-LM, seq2seq-LM, masked-LM and image-classification
mappings, build a tiny random checkpoint offline from its config class (hidden size, layers, heads,
experts and vocabulary shrunk; weights drawn with std INIT_STD so attention is far from uniform;
sliding windows shorter than the text), run the compare path in this process (the CLI's
adapters.compare functions, on a left- or right-padded batch of two texts), each under a time
limit, and print the count and the list of each outcome:

    verified from weights / verified at the attention function / mismatch / refused (reason) / crashed

plus the architectures that cannot be built offline from their config class or return no attention.

    python scripts/coverage_sweep.py                  # every architecture (minutes)
    python scripts/coverage_sweep.py --only llama,opt --limit 20 --json sweep.json
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import signal
import sys
import time
import typing
from collections import Counter
from dataclasses import asdict, dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402

from attn_demos.adapters.attention_function import AT_FUNCTION  # noqa: E402
from attn_demos.adapters.compare import compare_text_model, compare_vision_model  # noqa: E402
from attn_demos.adapters.loading import (  # noqa: E402
    as_loaded,
    choose_depth,
    family_as_built,
    implementation_to_load,
    refuse_without_attention_function,
)
from attn_demos.adapters.precision import EAGER  # noqa: E402
from attn_demos.adapters.random_checkpoints import vocabulary, word_level_tokenizer  # noqa: E402
from attn_demos.adapters.tokenizer_training import align_special_ids  # noqa: E402
from attn_demos.errors import UnsupportedModelError  # noqa: E402

MAPPINGS = {  # mapping name in transformers -> its auto class
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": "AutoModelForCausalLM",
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES": "AutoModelForSeq2SeqLM",
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES": "AutoModelForMaskedLM",
    "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES": "AutoModelForImageClassification",
}
TEXTS = ["the cat sat on the mat in the house", "a dog"]  # padded; longer than WINDOW
INIT_STD = 0.3
WINDOW = 3
WIDTH, HEADS, KV_HEADS, HEAD_DIM, LAYERS, FFN, EXPERTS, IMAGE, PATCH = 32, 4, 2, 8, 2, 64, 4, 32, 8
SMALL = {  # config attribute -> tiny value, set where the config class has the attribute as an int
    **dict.fromkeys(("hidden_size", "d_model", "n_embd", "embed_dim", "dim", "model_dim", "word_embed_proj_dim"), WIDTH),
    **dict.fromkeys(("num_attention_heads", "n_head", "n_heads", "encoder_attention_heads",
                     "decoder_attention_heads", "num_heads", "num_decoder_attention_heads"), HEADS),
    **dict.fromkeys(("num_key_value_heads", "num_kv_heads", "n_kv_heads"), KV_HEADS),
    **dict.fromkeys(("num_hidden_layers", "n_layer", "n_layers", "num_layers", "encoder_layers", "decoder_layers",
                     "num_decoder_layers"), LAYERS),
    **dict.fromkeys(("intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "n_inner",
                     "hidden_dim", "moe_intermediate_size", "shared_expert_intermediate_size"), FFN),
    **dict.fromkeys(("head_dim", "rotary_dim", "d_kv", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "attention_head_dim"), HEAD_DIM),
    **dict.fromkeys(("kv_lora_rank", "q_lora_rank"), 16),
    **dict.fromkeys(("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"), EXPERTS),
    **dict.fromkeys(("num_experts_per_tok", "moe_topk", "top_k"), 2),
    **dict.fromkeys(("sliding_window", "attention_window"), WINDOW),
    "image_size": IMAGE,
    "patch_size": PATCH,
    "embedding_size": WIDTH,
    "first_k_dense_replace": 1,
    **dict.fromkeys(("n_group", "topk_group"), 1),  # expert groups: one, with 4 experts
}
OUTCOMES = ("verified from weights", "verified at the attention function", "mismatch", "refused", "crashed")
NOT_COUNTED = ("not buildable", "no attention")


@dataclass
class Outcome:
    model_type: str
    architecture: str
    outcome: str  # one of OUTCOMES or NOT_COUNTED
    detail: str = ""  # max |Δ| and tolerance, or the refusal / error in one line
    seconds: float = 0.0


class TimeLimit(Exception):
    pass


def architectures(only: set[str] | None) -> list[tuple[str, str, str]]:
    """(model_type, class name, auto class) of every architecture of MAPPINGS, each class once."""
    seen, found = set(), []
    for mapping, auto_class in MAPPINGS.items():
        for model_type, names in getattr(modeling_auto, mapping).items():
            for name in (names,) if isinstance(names, str) else names:
                if name in seen or (only and model_type not in only):
                    continue
                seen.add(name)
                found.append((model_type, name, auto_class))
    return found


def tiny_config(model_type: str, vocab_size: int):
    """The config class's defaults with SMALL's sizes (sub-configs too), the vocabulary, INIT_STD."""
    config_class = transformers.CONFIG_MAPPING[model_type]
    return config_class(**_shrunk(config_class(), vocab_size))


def _shrunk(config, vocab_size: int) -> dict:
    defaults = config.to_dict()
    changes = {key: value for key, value in SMALL.items() if isinstance(defaults.get(key), int) and not isinstance(defaults.get(key), bool)}
    if "kv_lora_rank" in defaults and "num_key_value_heads" in changes:  # multi-head latent attention: as many kv heads
        changes["num_key_value_heads"] = HEADS
    if isinstance(defaults.get("vocab_size"), int):
        changes["vocab_size"] = vocab_size
    if isinstance(defaults.get("initializer_range"), float):
        changes["initializer_range"] = INIT_STD
    for key in ("layer_types", "block_types"):  # per-layer lists follow the layer count
        if isinstance(defaults.get(key), list) and defaults[key]:
            changes[key] = (defaults[key] * LAYERS)[-LAYERS:]  # the last ones: a final full-attention layer kept
    if isinstance(defaults.get("languages"), list) and defaults["languages"] and "default_language" in defaults:
        changes["default_language"] = defaults["languages"][0]  # X-MOD: its adapters need a language
    if isinstance(defaults.get("attention_types"), list):  # GPT-Neo: [[kinds, repeats]] covering every layer; local windows
        changes["attention_types"] = [[["global", "local"], LAYERS // 2]]
        changes["window_size"] = WINDOW
    for key, value in vars(config).items():  # sub-configs (text_config, vision_config …), shrunk alike
        if isinstance(value, transformers.PretrainedConfig):
            changes[key] = {**value.to_dict(), **_shrunk(value, vocab_size)}
    return changes


def build(model_type: str, name: str, auto_class: str, dtype: torch.dtype = torch.float32):
    """(LoadedModel, tokenizer or None) for a tiny random model of this architecture."""
    seq2seq = auto_class == "AutoModelForSeq2SeqLM"
    causal = auto_class == "AutoModelForCausalLM"
    vision = auto_class == "AutoModelForImageClassification"
    tokenizer = None if vision else word_level_tokenizer(vocabulary(TEXTS), seq2seq, causal=causal)
    config = tiny_config(model_type, vocab_size=64 + (len(tokenizer) if tokenizer else 0))
    if tokenizer is not None:
        align_special_ids(config, tokenizer)
    config.architectures = [name]  # which head, where the mapping names several (DeiT with and without teacher)
    family, depth, refusal = choose_depth(config)
    if depth == AT_FUNCTION:
        try:
            refuse_without_attention_function(getattr(transformers, name), refusal)
        except UnsupportedModelError:
            if not returns_attention(config, auto_class, tokenizer):
                raise NoAttention(f"{name} returns no attention maps") from None
            raise
    torch.manual_seed(0)
    model = getattr(transformers, auto_class).from_config(config, attn_implementation=implementation_to_load(depth, EAGER))
    model = model.to(dtype)
    if type(model).__name__ != name:
        raise TypeError(f"built {type(model).__name__}, not {name}")
    family = family_as_built(family, depth, model)
    return as_loaded(model_type, model, tokenizer, family, EAGER, depth, refusal)


class NoAttention(Exception):
    pass


def _output_types(class_name: str) -> list[type]:
    """The output dataclasses a model class's forward is annotated to return."""
    annotation = inspect.signature(getattr(transformers, class_name).forward).return_annotation
    members = typing.get_args(annotation) or (annotation,)
    return [t for t in members if isinstance(t, type) and dataclasses.is_dataclass(t)]


def returns_attention(config, auto_class: str, tokenizer) -> bool:
    """Whether the model returns attention maps: its output type has a field for them (ConvNeXt's
    ImageClassifierOutputWithNoAttention has none), and, built on eager, it fills one for
    output_attentions=True (a convolutional, state-space or Fourier model returns none)."""
    output_types = _output_types(config.architectures[0])
    if output_types and not any("attentions" in f.name for t in output_types for f in dataclasses.fields(t)):
        return False
    torch.manual_seed(0)
    try:
        model = getattr(transformers, auto_class).from_config(config, attn_implementation="eager").eval()
        if tokenizer is None:
            inputs = {"pixel_values": torch.rand(1, getattr(config, "num_channels", 3), IMAGE, IMAGE)}
        else:
            inputs = dict(tokenizer(TEXTS[:1], return_tensors="pt"))
            inputs.pop("token_type_ids", None)
            if auto_class == "AutoModelForSeq2SeqLM":
                inputs["decoder_input_ids"] = inputs["input_ids"][:, :2]
        with torch.no_grad():
            outputs = model(**inputs, output_attentions=True)
    except Exception:  # it cannot even run here: count it as returning maps (refused, not dropped)
        return True
    maps = [value for key, value in outputs.items() if "attentions" in key and value]
    return any(isinstance(layer, torch.Tensor) for value in maps for layer in value)


def run_one(model_type: str, name: str, auto_class: str, seconds: int, dtype: torch.dtype = torch.float32) -> Outcome:
    started = time.perf_counter()

    def outcome(kind: str, detail: str = "") -> Outcome:
        return Outcome(model_type, name, kind, detail.replace("\n", " ")[:300], round(time.perf_counter() - started, 2))

    signal.signal(signal.SIGALRM, _time_is_up)
    signal.alarm(seconds)
    try:
        try:
            loaded = build(model_type, name, auto_class, dtype)
        except UnsupportedModelError as error:
            return outcome("refused", str(error))
        except NoAttention as error:
            return outcome("no attention", str(error))
        except TimeLimit:
            return outcome("not buildable", f"over {seconds} s")
        except Exception as error:  # a config class that cannot make a model from its defaults offline
            return outcome("not buildable", f"{type(error).__name__}: {error}")
        try:
            if loaded.family.vision:
                pixels = torch.rand(2, getattr(loaded.config, "num_channels", 3), IMAGE, IMAGE, dtype=dtype)  # (B, C, H, W)
                report = compare_vision_model(loaded, pixels)
            else:
                # float64: one text, no padding (a padded row makes many libraries' float32 softmax NaN in float64)
                texts = TEXTS if dtype != torch.float64 else TEXTS[:1]
                report = compare_text_model(loaded, texts, num_beams=2, max_new_tokens=4) if loaded.is_encoder_decoder \
                    else compare_text_model(loaded, texts)
        except UnsupportedModelError as error:
            return outcome("refused", str(error))
        except TimeLimit:
            return outcome("crashed", f"over {seconds} s")
        except Exception as error:
            return outcome("crashed", f"{type(error).__name__}: {error}")
    finally:
        signal.alarm(0)
    detail = f"max |Δ| {report.max_abs_err:.2e}, tolerance {report.tolerance:.2e}, kinds {','.join(report.kinds())}"
    if not report.ok:
        return outcome("mismatch", detail)
    return outcome(f"verified {report.depth}", detail)


def _time_is_up(signum, frame):
    raise TimeLimit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated model types (e.g. llama,opt)")
    parser.add_argument("--limit", type=int, help="the first N architectures only")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per architecture")
    parser.add_argument("--json", help="write every outcome to this file")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(2)
    transformers.logging.set_verbosity_error()
    todo = architectures(set(args.only.split(",")) if args.only else None)[: args.limit]
    results = []
    for index, (model_type, name, auto_class) in enumerate(todo, 1):
        result = run_one(model_type, name, auto_class, args.timeout, getattr(torch, args.dtype))
        results.append(result)
        print(f"[{index}/{len(todo)}] {name}: {result.outcome} {result.detail}", file=sys.stderr, flush=True)
    print_summary(results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "dtype": args.dtype,
                       "outcomes": [asdict(r) for r in results]}, out, indent=1)
    return 0


def print_summary(results: list[Outcome]) -> None:
    counts = Counter(r.outcome for r in results)
    counted = sum(counts[o] for o in OUTCOMES)
    verified = counts[OUTCOMES[0]] + counts[OUTCOMES[1]]
    print(f"transformers {transformers.__version__}: {len(results)} architectures, {counted} built and run")
    for outcome in OUTCOMES + NOT_COUNTED:
        print(f"  {outcome}: {counts[outcome]}")
    if counted:
        print(f"  verified: {verified} of {counted} ({100 * verified / counted:.0f}%)")
    for outcome in OUTCOMES[2:] + OUTCOMES[:2] + NOT_COUNTED:
        names = [r for r in results if r.outcome == outcome]
        if names:
            print(f"\n{outcome}:")
            for r in names:
                print(f"  {r.architecture} ({r.model_type}): {r.detail}" if outcome not in OUTCOMES[:2] else f"  {r.architecture}")


if __name__ == "__main__":
    sys.exit(main())
