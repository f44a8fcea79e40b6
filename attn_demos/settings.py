"""The app's and the CLI's settings: every ATTN_DEMOS_* environment variable, read once, here.

`Settings.from_env()` reads and checks them (a bad value is one line naming the variable);
`current()` is the settings in force (read from the environment on first use) and `use(new)` /
`using(new)` replace them. The CLI builds its settings from the environment with its flags on top
(`dataclasses.replace`) and runs its command under them; nothing writes os.environ. The table of
variables, flags and defaults is docs/settings.md. Core (pure math) never reads settings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from attn_demos.errors import AttnDemosError

PREFIX = "ATTN_DEMOS_"  # a setting `name` is read from ATTN_DEMOS_<NAME>
AUTO = "auto"
DEVICES = (AUTO, "cpu", "cuda", "mps")  # "cuda:1" names one GPU
ATTN_IMPLEMENTATION_CHOICES = (AUTO, "eager", "sdpa")  # auto: the rule in tasks/hardware.py
MODEL_TASKS = ("explore", "translate", "answer", "summarize", "classify_image", "generate")  # a <task>_model each
DEFAULT_MAPS_BUDGET_MB = 1024.0  # one input's maps, every layer, float32 (tasks/inputs.py)
DEFAULT_KEPT_MB = 4096.0  # at least two results of the maps budget's largest (two copies of 1024 MB)
# Request limits: every request's work is bounded by these before it starts (docs/settings.md)
DEFAULT_MAX_CHARACTERS = 100_000  # one text (cut beyond it, before any per-character work), one Basics matrix
DEFAULT_MAX_TOKENS = 1024  # one input of a tab (Summarization's model reads 1024)
DEFAULT_MAX_MATRIX_ROWS = 64  # Basics: q, k and v each (scores and weights are rows × rows)
DEFAULT_MAX_MATRIX_COLUMNS = 64
DEFAULT_MAX_MATRIX_CELLS = 4096  # Basics: rows × columns of one matrix (64 × 64)
DEFAULT_MAX_IMAGE_PIXELS = 25_000_000  # an image's width × height as decoded (a JPEG may decode smaller)
DEFAULT_MAX_UPLOAD_MB = 10.0  # one upload (images only)
DEFAULT_MAX_BODY_MB = 4.0  # one request's body, uploads aside (two texts of 100,000 characters, JSON-escaped)
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
HOST_ENV, PORT_ENV = "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"  # Gradio's own names (Spaces sets them)
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingsError(AttnDemosError):
    """A setting's value cannot be used; the message names the variable (CLI exit 2)."""


@dataclass(frozen=True)
class Settings:
    """What the process runs with. Each field `name` is read from ATTN_DEMOS_<NAME> (host and port
    from Gradio's GRADIO_SERVER_NAME and GRADIO_SERVER_PORT); a CLI flag of the same name wins."""

    # Where and how the models run
    device: str = AUTO  # auto: cuda when torch sees a GPU, else cpu
    attn_implementation: str = AUTO  # auto, eager or sdpa (tasks/hardware.py)
    # Memory
    maps_budget_mb: float = DEFAULT_MAPS_BUDGET_MB  # one input's maps of every layer (the tabs), or kept by view
    kept_mb: float = DEFAULT_KEPT_MB  # visitors' results the app keeps for redraws (ui/kept.py)
    # The app's models: a Hub id or a local folder each (None: the tab's default, tasks/registry.py)
    allow_user_models: bool = False  # visitors may type a model id
    explore_model: str | None = None
    translate_model: str | None = None
    answer_model: str | None = None
    summarize_model: str | None = None
    classify_image_model: str | None = None
    generate_model: str | None = None
    # Where the app listens
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Request limits: each refusal (or cut) names its variable
    max_characters: int = DEFAULT_MAX_CHARACTERS
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_matrix_rows: int = DEFAULT_MAX_MATRIX_ROWS
    max_matrix_columns: int = DEFAULT_MAX_MATRIX_COLUMNS
    max_matrix_cells: int = DEFAULT_MAX_MATRIX_CELLS
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_body_mb: float = DEFAULT_MAX_BODY_MB

    def model(self, task: str) -> str | None:
        """The model set for `task` (one of MODEL_TASKS), None when none is."""
        if task not in MODEL_TASKS:
            raise KeyError(f"unknown task {task!r}")
        return getattr(self, f"{task}_model")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every setting from `environ` (None: os.environ); an unset or empty variable keeps the default."""
        environ = os.environ if environ is None else environ

        def value(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        def read(name: str, parse, default):
            text = value(variable(name))
            return default if text is None else parse(text, variable(name))

        return cls(
            device=read("device", _device, AUTO),
            attn_implementation=read("attn_implementation", _choice(ATTN_IMPLEMENTATION_CHOICES), AUTO),
            maps_budget_mb=read("maps_budget_mb", _megabytes, DEFAULT_MAPS_BUDGET_MB),
            kept_mb=read("kept_mb", _megabytes, DEFAULT_KEPT_MB),
            allow_user_models=read("allow_user_models", _switch, False),
            **{f"{task}_model": value(variable(f"{task}_model")) for task in MODEL_TASKS},
            max_characters=read("max_characters", _count, DEFAULT_MAX_CHARACTERS),
            max_tokens=read("max_tokens", _count, DEFAULT_MAX_TOKENS),
            max_matrix_rows=read("max_matrix_rows", _count, DEFAULT_MAX_MATRIX_ROWS),
            max_matrix_columns=read("max_matrix_columns", _count, DEFAULT_MAX_MATRIX_COLUMNS),
            max_matrix_cells=read("max_matrix_cells", _count, DEFAULT_MAX_MATRIX_CELLS),
            max_image_pixels=read("max_image_pixels", _count, DEFAULT_MAX_IMAGE_PIXELS),
            max_upload_mb=read("max_upload_mb", _megabytes, DEFAULT_MAX_UPLOAD_MB),
            max_body_mb=read("max_body_mb", _megabytes, DEFAULT_MAX_BODY_MB),
            host=value(HOST_ENV) or DEFAULT_HOST,
            port=_port(value(PORT_ENV), PORT_ENV) if value(PORT_ENV) else DEFAULT_PORT,
        )


def variable(name: str) -> str:
    """The environment variable of the setting `name`: device -> ATTN_DEMOS_DEVICE."""
    return PREFIX + name.upper()


def limit(name: str) -> str:
    """A request limit in force and its variable, for the line that refuses (or cuts) a request:
    limit("max_characters") -> "100,000 (ATTN_DEMOS_MAX_CHARACTERS)", limit("max_upload_mb") -> "10 MB (…)"."""
    value = getattr(current(), name)
    shown = f"{value:,}" if isinstance(value, int) else f"{value:g} MB"
    return f"{shown} ({variable(name)})"


def _device(text: str, name: str) -> str:
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind == AUTO or not index.isdigit())):
        raise SettingsError(f"{name} must be one of {', '.join(DEVICES)} (or cuda:N), got {text!r}")
    return text


def _choice(choices: tuple[str, ...]):
    def parse(text: str, name: str) -> str:
        if text not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def _megabytes(text: str, name: str) -> float:
    try:
        size = float(text)
    except ValueError:
        size = math.nan
    if not math.isfinite(size) or size <= 0:
        raise SettingsError(f"{name} must be a positive number of megabytes, got {text!r}")
    return size


def _count(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise SettingsError(f"{name} must be a positive whole number, got {text!r}")
    return int(text)


def _switch(text: str, name: str) -> bool:
    if text.lower() not in TRUE + FALSE:
        raise SettingsError(f"{name} must be 1 or 0 (true/false, yes/no), got {text!r}")
    return text.lower() in TRUE


def _port(text: str, name: str) -> int:
    if not (text.isdigit() and 0 < int(text) < 65536):
        raise SettingsError(f"{name} must be a port number (1–65535), got {text!r}")
    return int(text)


_active: Settings | None = None


def current() -> Settings:
    """The settings in force: the last `use`d, else the environment's (read on first call)."""
    global _active
    if _active is None:
        _active = Settings.from_env()
    return _active


def use(new: Settings | None) -> Settings | None:
    """Put `new` in force for the whole process (None: the environment's, read again on next use);
    returns the settings it replaces (None: not read yet)."""
    global _active
    previous, _active = _active, new
    return previous


@contextmanager
def using(new: Settings) -> Iterator[Settings]:
    """`new` in force inside the block, the settings before it after (tests, the CLI's commands)."""
    previous = use(new)
    try:
        yield new
    finally:
        use(previous)
