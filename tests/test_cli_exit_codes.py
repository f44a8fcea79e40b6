"""What a script sees of `attn-demos`, run as a program: exit 1 means a mismatch and nothing else;
every problem with the input, dataset, arguments, config or model is exit 2 with one line and no
traceback, before any model runs where it can be; a dataset is read only as far as --limit, a
--text-file only as far as the characters kept."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attn_demos.settings import DEFAULT_MAX_CHARACTERS as MAX_CHARACTERS

ROOT = Path(__file__).resolve().parents[1]
# A child's address space: ample for torch and a tiny model, and a wall for one that tries to
# allocate a config's worth of terabytes (it fails at once instead of pushing the machine into swap).
ADDRESS_SPACE = 4 * 2**30


def attn_demos(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run(
        [sys.executable, "-m", "attn_demos.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **(env or {})},
        preexec_fn=limited,
    )


def assert_one_line_exit_2(done: subprocess.CompletedProcess, fragment: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], done.stderr[-2000:]


# ---------------------------------------------------------------- datasets and arguments --------

DATASETS = {
    # case: (file name, bytes, what the one line says)
    "malformed JSONL": ("bad.jsonl", b'{"text": "a cat"}\n{"text": broken\n', "line 2 is not valid JSON"),
    "empty .jsonl": ("empty.jsonl", b"", "no records"),
    "empty CSV": ("empty.csv", b"", "no header row"),
    "header-only CSV": ("header.csv", b"id,text\n", "no records"),
    "JSONL that is not UTF-8": ("latin1.jsonl", '{"text": "café"}\n'.encode("latin-1"), "not UTF-8"),
    "CSV that is not UTF-8": ("latin1.csv", "text\ncafé\n".encode("latin-1"), "not UTF-8"),
    "a JSON line that is not an object": ("list.jsonl", b'["a cat"]\n', "line 1 is not a JSON object"),
    "no text field": ("numbers.csv", b"id,label\n1,2\n", "no text field"),
}


@pytest.mark.parametrize("case", DATASETS)
def test_a_bad_dataset_file_exits_2_with_one_line(checkpoints, tmp_path, case):
    name, data, fragment = DATASETS[case]
    (tmp_path / name).write_bytes(data)
    done = attn_demos("compare", "--model", str(checkpoints["bert"]), "--dataset", str(tmp_path / name))
    assert_one_line_exit_2(done, fragment)


def test_an_unreachable_hub_dataset_exits_2_with_one_line(checkpoints):
    done = attn_demos("compare", "--model", str(checkpoints["bert"]), "--dataset", "no-such-org/no-such-set")
    assert_one_line_exit_2(done, "no-such-org/no-such-set: cannot read this Hub dataset")


ARGUMENTS = {
    "--batch-size 0": (["--batch-size", "0"], "argument --batch-size: '0' is not a positive number"),
    "--limit 0": (["--limit", "0"], "argument --limit: '0' is not a positive number"),
    "--num-beams -1": (["--num-beams", "-1"], "argument --num-beams: '-1' is not a positive number"),
    "--tolerance nan": (["--tolerance", "nan"], "argument --tolerance: 'nan' is not a finite number ≥ 0"),
    "--tolerance -1": (["--tolerance", "-1"], "argument --tolerance: '-1' is not a finite number ≥ 0"),
    "--tolerance inf": (["--tolerance", "inf"], "argument --tolerance: 'inf' is not a finite number ≥ 0"),
}


@pytest.mark.parametrize("case", ARGUMENTS)
def test_a_bad_number_is_refused_when_the_arguments_are_read(checkpoints, case):
    argv, fragment = ARGUMENTS[case]
    done = attn_demos("compare", "--model", str(checkpoints["bert"]), "--text", "the cat sat", *argv)
    assert_one_line_exit_2(done, fragment)


# ---------------------------------------------------------------- models ------------------------


def _bert_copy(checkpoints, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(checkpoints["bert"], folder)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def test_a_config_with_negative_heads_exits_2(checkpoints, tmp_path):
    folder = _bert_copy(checkpoints, tmp_path, "negative-heads")
    _edit_config(folder, num_attention_heads=-4)
    done = attn_demos("compare", "--model", str(folder))
    assert_one_line_exit_2(done, "num_attention_heads is -4; a size must be a whole number ≥ 1")


def test_a_config_too_big_for_memory_is_refused_before_anything_is_allocated(checkpoints, tmp_path):
    """4000 layers × 8192 wide on a tiny safetensors file: terabytes of weights (it allocated 22 GB
    before the kernel killed it). Refused from the config, in one line."""
    folder = _bert_copy(checkpoints, tmp_path, "huge")
    _edit_config(folder, num_hidden_layers=4000, hidden_size=8192, num_attention_heads=64, intermediate_size=32768)
    done = attn_demos("compare", "--model", str(folder))
    assert_one_line_exit_2(done, "billion parameters")
    assert "GB in float32: more than this machine's" in done.stderr


def test_a_folder_without_tokenizer_files_exits_2_instead_of_matching_unknown_tokens(checkpoints, tmp_path):
    """Without them transformers gave an empty BertTokenizer: every word [UNK], and a MATCH, exit 0."""
    folder = _bert_copy(checkpoints, tmp_path, "no-tokenizer")
    for path in folder.glob("tokenizer*"):
        path.unlink()
    done = attn_demos("compare", "--model", str(folder), "--text", "the cat sat on the mat")
    assert_one_line_exit_2(done, "no tokenizer")


def test_an_index_naming_pickle_weights_exits_2(checkpoints, tmp_path):
    """The index passed the pickle refusal (it is a .safetensors.index.json) and sent transformers to
    pytorch_model.bin."""
    folder = _bert_copy(checkpoints, tmp_path, "index-to-pickle")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    index = {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": "pytorch_model.bin"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    done = attn_demos("compare", "--model", str(folder))
    assert_one_line_exit_2(done, "model.safetensors.index.json names weights that are not safetensors files")


def test_a_mismatch_is_still_exit_1(checkpoints):
    done = attn_demos("compare", "--model", str(checkpoints["bert"]), "--tolerance", "0", "--text", "the cat sat")
    assert done.returncode == 1 and "MISMATCH" in done.stdout, done.stderr[-2000:]


# ---------------------------------------------------------------- read only what is used -------


def test_dataset_limit_reads_only_the_records_it_uses(checkpoints, tmp_path):
    """Ten good records, then a broken one and a long tail: with --limit 10 neither is read (the
    whole file went through datasets, which refused it, and copied it into its Arrow cache)."""
    dataset = tmp_path / "big.jsonl"
    with dataset.open("w") as handle:
        for i in range(10):
            handle.write(json.dumps({"id": i, "text": f"the cat sat on the mat {i}"}) + "\n")
        handle.write('{"text": "broken\n')
        handle.write("not json at all\n" * 1_000_000)  # 16 MB that a whole-file reader would parse
    common = ["compare", "--model", str(checkpoints["bert"]), "--dataset", str(dataset), "--json"]
    done = attn_demos(*common, "--limit", "10")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["num_inputs"] == 10
    assert_one_line_exit_2(attn_demos(*common), "line 11 is not valid JSON")  # without the limit it is read


def test_csv_limit_reads_only_the_rows_it_uses(checkpoints, tmp_path):
    dataset = tmp_path / "big.csv"
    rows = "".join(f"{i},the dog and the cat {i}\n" for i in range(10))
    dataset.write_bytes(b"id,text\n" + rows.encode() + "99,café\n".encode("latin-1") * 100_000)
    done = attn_demos("compare", "--model", str(checkpoints["bert"]), "--dataset", str(dataset), "--limit", "10", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["num_inputs"] == 10


def test_view_text_file_reads_only_the_characters_it_keeps(checkpoints, tmp_path):
    """More characters than any input keeps, then bytes that are not UTF-8: the tail is never read
    (the whole file was read, so the view was refused), and the view says where reading stopped."""
    text_file = tmp_path / "long.txt"
    text_file.write_bytes(("the cat " * (MAX_CHARACTERS // 8 + 1000)).encode() + b"\xff\xfe broken tail" * 100_000)
    done = attn_demos("view", "--model", str(checkpoints["bert"]), "--text-file", str(text_file), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert f"The file was read up to its first {MAX_CHARACTERS:,} characters; the rest was not read." in report["notices"]
