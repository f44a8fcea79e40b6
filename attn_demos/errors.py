"""The project's errors; each message is one line that says what to do."""


class AttnDemosError(Exception):
    """Base of every error this project raises on purpose."""


class UnsupportedModelError(AttnDemosError):
    """The architecture has no adapter, so its attention cannot be recomputed (CLI exit 2)."""


class ModelLoadError(AttnDemosError):
    """A model or tokenizer could not be loaded (bad id, no network, missing or unsafe weights)."""


class NoAttentionError(AttnDemosError):
    """The model returned no attention weights (e.g. loaded with sdpa instead of eager)."""


class BadInputError(AttnDemosError):
    """User input that cannot be processed (empty text, broken image, bad matrix)."""
