"""Load a Hugging Face model so that it returns attention weights: eager, safetensors, no remote code.

What can be refused without loading is refused first: a folder or index naming weights that are not
safetensors, a config with impossible sizes or too big for this machine's memory, a missing tokenizer.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import transformers
from transformers.models.auto import modeling_auto

from attn_demos.adapters.attention_function import AT_FUNCTION, CHECK_IMPLEMENTATION, FROM_WEIGHTS, register
from attn_demos.adapters.families import Family, check_dtype, family_for, family_of_model
from attn_demos.adapters.model_size import refuse_beyond_memory, refuse_impossible_sizes
from attn_demos.adapters.precision import ATTN_IMPLEMENTATIONS, DTYPES, EAGER, dtype_of, resolve_device
from attn_demos.errors import ModelLoadError, UnsupportedModelError

AUTO_CLASSES = {  # load_model(auto_class=…) -> transformers' auto class, and its public table model_type -> class name
    "base": ("AutoModel", "MODEL_MAPPING_NAMES"),
    "seq2seq": ("AutoModelForSeq2SeqLM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    "qa": ("AutoModelForQuestionAnswering", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
    "image": ("AutoModelForImageClassification", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"),
    "causal_lm": ("AutoModelForCausalLM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
}
AUTO_CLASS_NEEDS = {
    "seq2seq": "an encoder-decoder (translation or summarization) model",
    "qa": "an extractive question-answering model",
    "image": "an image-classification model",
    "causal_lm": "a decoder-only language model (GPT-2, Llama, Qwen …)",
}
__all__ = ["DTYPES", "LoadedModel", "load_model", "load_model_cached"]
SAFE_INDEX = "model.safetensors.index.json"  # a sharded checkpoint's map: tensor name -> file
# pickle weights (loading them can run code): a folder holding any is refused, even beside safetensors
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


@dataclass
class LoadedModel:
    """A model in eval mode on its device, its tokenizer or image processor, and its family.

    attn_implementation "eager" returns the library's weights; "sdpa" runs the
    fused kernel and returns none (the core's weights are then verified by the output, verify.py).
    """

    source: str
    model: torch.nn.Module
    preprocessor: object  # a tokenizer, or an image processor for vision models
    family: Family
    architecture: str
    attn_implementation: str = EAGER
    depth: str = FROM_WEIGHTS  # or AT_FUNCTION: see attention_function.py
    weights_refusal: str = ""  # at the attention function: why the from-weights depth does not apply

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def config(self):
        return self.model.config

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    @property
    def is_decoder_only(self) -> bool:
        """A causal language model (GPT-2, Llama …): one self-attention stack, kind "decoder"."""
        return self.family.decoder_only


def load_config(source: str | os.PathLike):
    """The config alone (small, fast): enough to refuse an unsupported architecture early."""
    source = os.fspath(source)  # a pathlib.Path works as its text
    _refuse_unsafe_folder(source)
    _refuse_unreachable_hub(source)
    try:
        config = transformers.AutoConfig.from_pretrained(source, trust_remote_code=False)
    except Exception as error:  # the library raises OSError, ValueError, HTTP errors…
        if "custom code" in str(error):  # an auto_map to the checkpoint's own Python files
            raise ModelLoadError(
                f"{source}: this checkpoint needs its own Python code to load, and attn-demos never runs code "
                "shipped with a checkpoint; choose a model that transformers supports natively"
            ) from None
        raise ModelLoadError(_explain(source, error)) from None
    refuse_impossible_sizes(source, config)
    return config


def load_model(
    source: str | os.PathLike,
    auto_class: str = "auto",
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    attn_implementation: str = EAGER,
) -> LoadedModel:
    """Load `source` (Hub id or local folder) in eval mode, in `dtype`, on `device`.

    auto_class: "auto" (the checkpoint's own architecture class), or one of AUTO_CLASSES. device: a torch
    device or one of precision.DEVICES ("auto": cuda when available). attn_implementation:
    "eager" (default: the library returns its weights) or "sdpa" (fused kernel, no weights).
    Raises UnsupportedModelError before any weight is read if the family is unknown, and
    ModelLoadError (one line) for weights that are not all safetensors, a model too big for this
    machine's memory, or a checkpoint without a tokenizer.
    """
    source = os.fspath(source)  # a pathlib.Path works as its text
    torch_dtype = dtype_of(dtype)
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, got {attn_implementation!r}")
    device = device if isinstance(device, torch.device) else resolve_device(device)
    config = load_config(source)
    family, depth, refusal = choose_depth(config)
    check_dtype(family, config, torch_dtype)
    model_class, concrete = _model_classes(config, auto_class)
    vision = family.vision
    if depth == AT_FUNCTION:
        refuse_without_attention_function(concrete, refusal)
        vision = concrete.main_input_name == "pixel_values"
    refuse_beyond_memory(source, config, dtype, torch_dtype.itemsize)
    if not Path(source).expanduser().is_dir():
        _refuse_unsafe_index(source, _hub_index(source))
    try:
        if vision:
            preprocessor = transformers.AutoImageProcessor.from_pretrained(source, trust_remote_code=False)
        else:
            preprocessor = transformers.AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except Exception as error:
        raise ModelLoadError(_explain(source, error)) from None
    if not vision and _has_no_vocabulary(preprocessor):
        raise ModelLoadError(
            f"{source}: no tokenizer (its vocabulary holds only special tokens): the checkpoint needs its "
            "tokenizer files (tokenizer.json, or vocab.txt, spiece.model …) beside config.json"
        )
    try:
        model = model_class.from_pretrained(
            source,
            attn_implementation=implementation_to_load(depth, attn_implementation),
            dtype=torch_dtype,
            use_safetensors=True,
            trust_remote_code=False,
        )
        family = family_as_built(family, depth, model)
    except Exception as error:
        if depth == AT_FUNCTION and CHECK_IMPLEMENTATION in str(error):
            raise UnsupportedModelError(f"{refusal}; nor can it be checked at the attention function: {_first_line(error)}") from None
        raise ModelLoadError(_explain(source, error)) from None
    return as_loaded(source, model.to(device), preprocessor, family, attn_implementation, depth, refusal)


def choose_depth(config) -> tuple[Family, str, str]:
    """(family, depth, why not from weights): the deepest depth that may apply to this config.
    From weights when the family table has its architecture (and the family takes its settings);
    else at the attention function (checked once the model runs: it must call that function)."""
    try:
        return family_for(config.model_type, config), FROM_WEIGHTS, ""
    except UnsupportedModelError as error:
        register()
        return Family(config.model_type, ()), AT_FUNCTION, str(error)


def refuse_without_attention_function(model_class, refusal: str) -> None:
    """Before any weight is read: refuse, in one line, a model class whose modeling file does not
    use transformers' attention-function registry (so the attention-function depth cannot apply)."""
    modeling = importlib.import_module(model_class.__module__)
    if not hasattr(modeling, "ALL_ATTENTION_FUNCTIONS"):
        raise UnsupportedModelError(
            f"{refusal.split(' (supported:')[0]}, and {model_class.__name__} does not call transformers' attention "
            "function (AttentionInterface), so it cannot be checked at that depth either: no numbers are shown"
        )


def implementation_to_load(depth: str, attn_implementation: str) -> str:
    """The attn_implementation to build the model with: the check's own at the attention function
    (it runs the asked one, eager or sdpa, beside the check), else the asked one."""
    return CHECK_IMPLEMENTATION if depth == AT_FUNCTION else attn_implementation


def family_as_built(family: Family, depth: str, model: torch.nn.Module) -> Family:
    """At the attention function the family is what the built model says: vision (pixel input) or
    text, and decoder-only or not: not an encoder-decoder, and a generating model, a decoder by its
    config, or the base of an architecture that has a causal-LM head and no masked-LM head (LlamaModel)."""
    if depth != AT_FUNCTION:
        return family
    config = model.config
    causal_only = type(config) in transformers.MODEL_FOR_CAUSAL_LM_MAPPING and type(config) not in transformers.MODEL_FOR_MASKED_LM_MAPPING
    decoder = model.can_generate() or getattr(config, "is_decoder", False) or causal_only
    return replace(
        family,
        vision=model.main_input_name == "pixel_values",
        decoder_only=not getattr(config, "is_encoder_decoder", False) and decoder,
        prefix_tokens=(),
    )


def as_loaded(
    source: str, model: torch.nn.Module, preprocessor, family: Family, attn_implementation: str, depth: str, refusal: str
) -> LoadedModel:
    """A built model as a LoadedModel: in eval mode, its family as the model runs it, a pad token
    for a decoder-only tokenizer that has none."""
    model.eval()
    family = family_of_model(family, model.config)  # a causal-LM head of an encoder (-decoder) family
    if family.decoder_only and preprocessor.pad_token is None:
        preprocessor.pad_token = preprocessor.eos_token  # GPT-2 and others ship no pad token; padding is masked anyway
    return LoadedModel(source, model, preprocessor, family, type(model).__name__, attn_implementation, depth, refusal)


_cache: dict[tuple, LoadedModel] = {}
_load_lock = threading.Lock()


def load_model_cached(
    source: str | os.PathLike,
    auto_class: str = "auto",
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    attn_implementation: str = EAGER,
) -> LoadedModel:
    """load_model once per (source, auto_class, dtype, device, attn_implementation) per process; safe
    when requests race to load.

    Loads run one at a time: from_pretrained is not thread-safe (two models loading at once
    fail with meta-device errors, or silently re-initialise tied weights). A model that is
    already loaded is returned without waiting for a load in progress.
    """
    source = os.fspath(source)  # one cache entry for a folder given as text or as a Path
    device = device if isinstance(device, torch.device) else resolve_device(device)
    key = (source, auto_class, dtype, str(device), attn_implementation)
    if key in _cache:
        return _cache[key]
    with _load_lock:
        if key not in _cache:
            _cache[key] = load_model(source, auto_class, dtype, device, attn_implementation)
        return _cache[key]


def base_model_class(config):
    """The class AutoModel builds for this config (from transformers' public model_type table), or None."""
    names = modeling_auto.MODEL_MAPPING_NAMES.get(config.model_type)
    name = names[0] if isinstance(names, (list, tuple)) else names
    return getattr(transformers, name, None) if name else None


def _model_classes(config, auto_class: str):
    """(the class from_pretrained is called on, the model class it builds for this config)."""
    if auto_class == "auto":
        for name in config.architectures or []:
            if hasattr(transformers, name):
                return getattr(transformers, name), getattr(transformers, name)
        auto_class = "base"
    if auto_class not in AUTO_CLASSES:
        raise ValueError(f"auto_class must be 'auto' or one of {', '.join(AUTO_CLASSES)}, got {auto_class!r}")
    class_name, table = AUTO_CLASSES[auto_class]
    names = getattr(modeling_auto, table).get(config.model_type)
    name = names[0] if isinstance(names, (list, tuple)) else names
    if name is None and auto_class in AUTO_CLASS_NEEDS:
        raise ModelLoadError(f"this is a {config.model_type} model, not {AUTO_CLASS_NEEDS[auto_class]}")
    return getattr(transformers, class_name), getattr(transformers, name or class_name)


def _refuse_unsafe_folder(source: str) -> None:
    """A local folder loads only if it has a config and safetensors weights, and every weight file
    it holds or its index names is safetensors: refused here, before anything in it is parsed."""
    folder = Path(source).expanduser()
    if source.startswith(("/", ".", "~")) and not folder.exists():
        raise ModelLoadError(f"{source}: no such folder")
    if not folder.is_dir():
        return
    if not (folder / "config.json").exists():
        raise ModelLoadError(f"{source}: not a model folder (no config.json)")
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    if pickles:
        which = "pickle weights beside its safetensors" if any(folder.glob("*.safetensors")) else "only pickle weights"
        raise ModelLoadError(
            f"{source}: {which} ({', '.join(pickles)}); "
            "attn-demos loads a folder only when all its weights are safetensors "
            "(move those files out, or convert them where you trust the file: transformers' "
            "model.save_pretrained(folder) writes safetensors)"
        )
    if (folder / SAFE_INDEX).exists():
        _refuse_unsafe_index(source, folder / SAFE_INDEX)
    elif not any(folder.glob("*.safetensors")):
        raise ModelLoadError(f"{source}: no weights; attn-demos loads safetensors only (no *.safetensors file)")


def _refuse_unsafe_index(source: str, index: Path | None) -> None:
    """Every file a sharded checkpoint's index names must be a .safetensors file beside it."""
    if index is None:
        return
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = set(weight_map.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ModelLoadError(f"{source}: {SAFE_INDEX} is not a readable index (no weight_map of file names)") from None
    unsafe = sorted(
        str(name) for name in files
        if not isinstance(name, str) or not name.endswith(".safetensors") or Path(name).name != name
    )
    if unsafe:
        raise ModelLoadError(
            f"{source}: {SAFE_INDEX} names weights that are not safetensors files beside it ({', '.join(unsafe[:5])}); "
            "attn-demos loads safetensors only"
        )


def _hub_index(source: str) -> Path | None:
    """A Hub checkpoint's index (downloaded, or from the cache), None if it has none or the Hub
    cannot be asked (then from_pretrained cannot fetch it either)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source, SAFE_INDEX))
    except EntryNotFoundError:  # no such file, or offline and not in the cache
        return None
    except Exception as error:  # a bad id, no such repository, HTTP errors…
        raise ModelLoadError(_explain(source, error)) from None


def _has_no_vocabulary(tokenizer) -> bool:
    """What transformers gives for a checkpoint without tokenizer files: the class its config
    names, with only its special tokens ([UNK] for every word)."""
    return set(tokenizer.get_vocab()) <= set(tokenizer.all_special_tokens)


def _refuse_unreachable_hub(source: str) -> None:
    """Fail in a second, not after half a minute of retries, when a Hub id can't be fetched."""
    if Path(source).expanduser().exists() or _in_hub_cache(source) or hub_reachable():
        return
    raise ModelLoadError(
        f"could not load {source!r}: the Hugging Face Hub is unreachable from here and the model is not "
        "in the local cache — download it where the Hub is reachable (python scripts/download_models.py) "
        "and pass the local folder"
    )


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # not a valid repo id: let from_pretrained say so
        return True


_hub_state: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 2.0, ttl: float = 60.0) -> bool:
    """Can this machine open a connection to the Hub? Cached for `ttl` seconds; False offline."""
    import os
    import socket
    import time
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    checked = _hub_state.get(host)
    if checked and time.monotonic() - checked[0] < ttl:
        return checked[1]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        reachable = True
    except OSError:
        reachable = False
    _hub_state[host] = (time.monotonic(), reachable)
    return reachable


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__


def _explain(source: str, error: Exception) -> str:
    first_line = _first_line(error)
    hint = (
        "check the id, or download it where the Hub is reachable "
        "(python scripts/download_models.py) and pass the local folder"
    )
    return f"could not load {source!r}: {first_line[:300]} — {hint}"
