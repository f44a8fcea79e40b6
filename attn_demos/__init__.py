"""attn-demos: attention from scratch, checked head by head against real transformers."""

__version__ = "0.1.0"
