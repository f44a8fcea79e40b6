"""Example inputs shipped with the package, read through `datasets` from local JSONL files."""

from __future__ import annotations

from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
EXAMPLE_SETS = {
    "translate": "translation.jsonl",
    "answer": "qa.jsonl",
    "summarize": "summarization.jsonl",
    "explore": "sentences.jsonl",
}


@cache
def load_examples(task: str) -> list[dict]:
    """The rows of a task's example set, as dicts."""
    import datasets

    data = datasets.load_dataset("json", data_files=str(DATA / EXAMPLE_SETS[task]), split="train")
    return [dict(row) for row in data]


def all_example_texts() -> list[str]:
    """Every string of every example set (the vocabulary of random test checkpoints)."""
    return [value for task in EXAMPLE_SETS for row in load_examples(task) for value in row.values() if isinstance(value, str)]


EXAMPLE_IMAGES = ("cheetah.jpg", "lion.jpg", "tower.jpg", "bus.png")


def example_images() -> list[str]:
    """Sample photos that the installed gradio package ships (Apache-2.0), as file paths."""
    try:
        from gradio.media import get_image
    except ImportError:
        return []
    paths = []
    for name in EXAMPLE_IMAGES:
        try:
            path = get_image(name)
        except (FileNotFoundError, ValueError):
            continue
        if Path(path).exists():
            paths.append(str(path))
    return paths
