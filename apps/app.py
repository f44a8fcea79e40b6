"""attn-demos: every demo in one app, a tab each. `python apps/app.py` or `attn-demos launch`.

Hugging Face Spaces runs this file (README front matter: app_file: apps/app.py) from the
repository root with PYTHONPATH set to it, so `attn_demos` imports from the repository; locally,
`pip install -e .` (scripts/setup.sh) makes it importable.
"""

from attn_demos.ui.app import build, launch

demo = build()

if __name__ == "__main__":
    launch(demo)
