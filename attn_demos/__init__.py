"""attn-demos: attention from scratch, checked head by head against real transformers.

`from attn_demos import show` draws a model's attention inline in a notebook (attn_demos.notebook);
it is imported on first use, so `import attn_demos` stays light."""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "show":
        from attn_demos.notebook import show

        return show
    raise AttributeError(f"module 'attn_demos' has no attribute {name!r}")
