"""attn-demos: every demo in one app, a tab each. `python apps/app.py` or `attn-demos launch`.

Hugging Face Spaces runs this file (README front matter: app_file: apps/app.py) as
`python apps/app.py` after installing requirements.txt only: the project itself is not installed,
and Python puts this file's folder, apps/, first on sys.path, not the repository root that holds
`attn_demos`. So the root goes first here; in a checkout with `pip install -e .` it is the same folder.
Models load on first use: building the page reads each model's config only.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root (see above)

from attn_demos.ui.app import build, launch  # noqa: E402  (importable only once the root is on sys.path)

demo = build()

if __name__ == "__main__":
    launch(demo)
