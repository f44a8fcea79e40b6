"""The `attn-demos` command line: exit codes, printed numbers, JSON shape and report files."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAMILIES

from attn_demos import cli
from attn_demos.adapters.precision import tolerance_for
from attn_demos.tasks import comparison

# The seed tutorial by hand: scores [1/√3, 0]; weights e^{1/√3}/(e^{1/√3}+1) and 1/(e^{1/√3}+1);
# output w₀·[1, 2] + w₁·[3, 4].
SCORE = 1 / math.sqrt(3)
W0 = math.exp(SCORE) / (math.exp(SCORE) + 1)
W1 = 1 - W0
OUTPUT = [W0 * 1 + W1 * 3, W0 * 2 + W1 * 4]
REPORT_KEYS = {
    "model", "architecture", "ok", "tolerance", "measure", "max_abs_err", "num_inputs", "num_tokens", "device",
    "dtype", "attn_implementation", "batch_size", "num_beams", "runtime_s", "dataset", "versions",
    "input_tokens", "input_max_abs_err", "worst_input", "head_max_abs_err", "results", "first_nan", "max_abs_logit", "depth",
}
RESULT_KEYS = {"kind", "layer", "max_abs_err", "heads"}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_hand_values_round_to_the_printed_digits():
    assert [f"{x:.6f}" for x in (SCORE, W0, W1, *OUTPUT)] == [
        "0.577350",
        "0.640457",
        "0.359543",
        "1.719085",
        "2.719085",
    ]


# --- basics --------------------------------------------------------------------------------------


def test_basics_prints_the_seed_numbers(capsys):
    code, out, _ = run(capsys, "basics")
    assert code == 0
    for number in ("0.57735", "0.640457", "0.359543", "1.719085", "2.719085"):
        assert number in out
    assert out.count("(torch)") == 3 and out.count("(numpy)") == 3
    assert "agree" in out and "DISAGREE" not in out


def test_basics_json(capsys):
    code, out, _ = run(capsys, "basics", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["d_k"] == 3
    assert data["scores"] == [pytest.approx([SCORE, 0.0], abs=1e-15)]
    assert data["weights"] == [pytest.approx([W0, W1], abs=1e-15)]
    assert data["output"] == [pytest.approx(OUTPUT, abs=1e-14)]
    assert data["torch_vs_numpy_max_abs_diff"] <= 1e-12


def test_basics_with_other_matrices(capsys):
    # One key: all weight on it, and the output is its value.
    code, out, _ = run(capsys, "basics", "--json", "--query", "[[2, 3]]", "--key", "[[1, 1]]", "--value", "[[5, 7]]")
    assert code == 0
    data = json.loads(out)
    assert data["scores"] == [[pytest.approx(5 / math.sqrt(2))]]
    assert data["weights"] == [[1.0]] and data["output"] == [[5.0, 7.0]]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--key", "[[1, 0], [0, 1]]"], ["query", "key", "3", "2"]),
        (["--value", "[[1, 2]]"], ["key", "value"]),
        (["--query", "[[1, 0, 1], [1]]"], ["query"]),
        (["--query", "not json"], ["query", "JSON"]),
    ],
)
def test_basics_bad_input_exits_2_with_one_line(capsys, argv, words):
    code, out, err = run(capsys, "basics", *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    for word in words:
        assert word in lines[0]


# --- compare -------------------------------------------------------------------------------------


def _check_report_json(data: dict):
    assert set(data) == REPORT_KEYS
    assert data["results"]
    for item in data["results"]:
        assert set(item) == RESULT_KEYS
        assert item["max_abs_err"] == max(item["heads"])
    assert data["max_abs_err"] == max(item["max_abs_err"] for item in data["results"])


def test_compare_minilm_json(capsys, minilm_path):
    code, out, _ = run(capsys, "compare", "--model", str(minilm_path), "--json")
    assert code == 0
    data = json.loads(out)
    _check_report_json(data)
    assert data["ok"] is True and data["architecture"] == "BertModel"
    assert data["tolerance"] == tolerance_for("float32", data["max_abs_logit"]) and data["max_abs_logit"] > 0
    assert data["max_abs_err"] <= data["tolerance"]
    assert [(r["kind"], r["layer"]) for r in data["results"]] == [("encoder", layer) for layer in range(6)]
    assert all(len(r["heads"]) == 12 for r in data["results"])


def test_compare_text_with_bytes_that_are_not_utf8(capsys, minilm_path):
    """A shell passes `$'caf\\xe9'` as bytes; Python keeps the stray byte as a lone surrogate, which
    the tokenizer refused with a TypeError traceback. It is read as U+FFFD (the tokenizer's [UNK])."""
    code, out, _ = run(capsys, "compare", "--model", str(minilm_path), "--text", "caf\udce9 au lait", "--json")
    assert code == 0
    data = json.loads(out)
    clean = run(capsys, "compare", "--model", str(minilm_path), "--text", "caf\ufffd au lait", "--json")[1]
    assert data["input_tokens"] == json.loads(clean)["input_tokens"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("family", FAMILIES)
def test_compare_every_tiny_family(capsys, checkpoints, family, dtype):
    code, out, _ = run(
        capsys, "compare", "--model", str(checkpoints[family]), "--dtype", dtype, "--json", "--max-new-tokens", "6"
    )
    data = json.loads(out)
    _check_report_json(data)
    assert code == 0 and data["ok"] is True
    kinds = {r["kind"] for r in data["results"]}
    if family in ("bart", "marian", "t5"):
        assert kinds == {"encoder", "decoder", "cross", "decoder (generate)", "cross (generate)"}
    else:
        assert kinds == ({"vision"} if family == "vit" else {"encoder"})


def test_compare_decoder_only_checks_one_forward_pass_unless_generation_is_asked(capsys, checkpoints):
    model = str(checkpoints["gpt2"])
    code, out, _ = run(capsys, "compare", "--model", model, "--json")
    data = json.loads(out)
    assert code == 0 and {r["kind"] for r in data["results"]} == {"decoder"} and data["num_beams"] is None
    for asked in (("--max-new-tokens", "3"), ("--num-beams", "2")):
        code, out, _ = run(capsys, "compare", "--model", model, "--json", *asked)
        data = json.loads(out)
        assert code == 0 and {r["kind"] for r in data["results"]} == {"decoder", "decoder (generate)"}, asked


def test_compare_table_output(capsys, checkpoints):
    code, out, _ = run(
        capsys, "compare", "--model", str(checkpoints["bert"]), "--text", "the cat sat", "--text", "a dog"
    )
    assert code == 0
    assert "MATCH" in out and "MISMATCH" not in out
    assert sum(1 for line in out.splitlines() if line.startswith("encoder")) == 2  # one line per layer


def test_compare_architecture_with_neither_depth_exits_2(capsys, tmp_path):
    """BLOOM is not in the family table and does not call transformers' attention function: one line, exit 2."""
    import transformers

    config = transformers.BloomConfig(hidden_size=16, n_head=2, n_layer=1, vocab_size=40)
    transformers.BloomForCausalLM(config).save_pretrained(tmp_path / "bloom")
    code, out, err = run(capsys, "compare", "--model", str(tmp_path / "bloom"))
    assert code == 2 and out == ""
    message = [line for line in err.splitlines() if line.startswith("attn-demos")]
    assert len(message) == 1 and "'bloom'" in message[0] and "attention function" in message[0]
    assert "Traceback" not in err


def test_compare_unsupported_rotary_type_is_checked_at_the_attention_function(capsys, tmp_path):
    """A Llama with proportional rotary (a type the core does not implement): not approximated by plain
    rotary from weights, but checked at the attention function (from the q, k, v its modules pass), and
    the report says which depth."""
    from attn_demos.adapters.random_checkpoints import build_checkpoint

    rope = {"rope_type": "proportional", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    folder = build_checkpoint("llama", tmp_path / "proportional", rope_parameters=rope)
    code, out, _ = run(capsys, "compare", "--model", str(folder), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["depth"] == "at the attention function"
    code, out, _ = run(capsys, "compare", "--model", str(folder))
    assert code == 0 and "checked at the attention function" in out.splitlines()[0]


def test_compare_missing_model_folder_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "compare", "--model", str(tmp_path / "nothing-here"))
    assert code == 2 and "Traceback" not in err


def test_compare_dataset_writes_report_files(capsys, checkpoints, tmp_path, monkeypatch):
    dataset = tmp_path / "texts.jsonl"
    rows = [
        "The cat sat on the mat.",
        "Attention is all you need.",
        "I would like a cup of coffee, please.",
        "The weather will be sunny tomorrow.",
        "She reads a book in the garden every morning.",
    ]
    dataset.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(rows)))
    seen = []
    real_compare = comparison.compare_model
    monkeypatch.setattr(
        comparison,
        "compare_model",
        lambda source, texts, *a, **k: seen.append(texts) or real_compare(source, texts, *a, **k),
    )

    from matplotlib.figure import Figure

    titles = []
    real_suptitle = Figure.suptitle
    monkeypatch.setattr(Figure, "suptitle", lambda fig, text, **k: titles.append(text) or real_suptitle(fig, text, **k))
    out_dir = tmp_path / "report"
    code, out, _ = run(
        capsys,
        "compare",
        "--model",
        str(checkpoints["bart"]),
        "--dataset",
        str(dataset),
        "--limit",
        "3",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "6",
        "--out",
        str(out_dir),
    )
    assert code == 0
    assert seen == [rows[:3]]
    assert {p.name for p in out_dir.iterdir()} == {"report.json", "report.csv", "errors.png"}
    data = json.loads((out_dir / "report.json").read_text())
    assert titles == [f"bart: match (tolerance {data['tolerance']:g}; cpu, float32, eager)"]  # the folder, not the server's path
    _check_report_json(data)
    config = json.loads((checkpoints["bart"] / "config.json").read_text())
    layers, heads = config["encoder_layers"], config["encoder_attention_heads"]
    kinds = ["encoder", "decoder", "cross", "decoder (generate)", "cross (generate)"]
    with (out_dir / "report.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(kinds) * layers * heads
    assert {(r["kind"], int(r["layer"]), int(r["head"])) for r in table} == {
        (k, layer, head) for k in kinds for layer in range(layers) for head in range(heads)
    }
    assert all(r["within_tolerance"] == "True" for r in table)

    from PIL import Image

    with Image.open(out_dir / "errors.png") as image:
        image.verify()
    with Image.open(out_dir / "errors.png") as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_compare_mismatch_exits_1(capsys, checkpoints):
    model = str(checkpoints["bart"])
    # float32 generate-vs-forced differs by rounding: measure it first, then demand half of it.
    code, out, _ = run(capsys, "compare", "--model", model, "--json")
    first = json.loads(out)
    assert code == 0 and first["ok"] is True
    assert 0 < first["max_abs_err"] <= 1e-5, "precondition: a nonzero float32 error"

    code, out, _ = run(capsys, "compare", "--model", model, "--json", "--tolerance", str(first["max_abs_err"] / 2))
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    assert data["max_abs_err"] == first["max_abs_err"]

    code, out, _ = run(capsys, "compare", "--model", model, "--tolerance", "0")
    assert code == 1 and "MISMATCH" in out


def test_compare_text_and_dataset_together_is_a_usage_error(capsys, checkpoints, tmp_path):
    code, _, err = run(capsys, "compare", "--model", str(checkpoints["bert"]), "--text", "a", "--dataset", "x.jsonl")
    assert code == 2 and "not both" in err


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2


# --- the installed console script ----------------------------------------------------------------


def _console_script() -> str:
    script = Path(sys.executable).parent / "attn-demos"
    if not script.exists():
        pytest.skip("the attn-demos console script is not installed next to this Python")
    return str(script)


@pytest.mark.slow  # a process of its own
def test_console_script_basics_json():
    done = subprocess.run(
        [_console_script(), "basics", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["weights"] == [pytest.approx([W0, W1], abs=1e-15)]
    assert data["output"] == [pytest.approx(OUTPUT, abs=1e-14)]


@pytest.mark.slow  # a process of its own
def test_console_script_bad_shape_has_no_traceback():
    done = subprocess.run(
        [_console_script(), "basics", "--key", "[[1, 0]]"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# --- devices, dtypes, implementations and what a report records ----------------------------------


def test_compare_records_the_run(capsys, checkpoints):
    import torch
    import transformers

    model = str(checkpoints["bert"])
    texts = ["the cat sat on the mat", "a dog", "the house and the water"]
    code, out, _ = run(capsys, "compare", "--model", model, "--json", "--device", "cpu", "--batch-size", "2",
                       *[a for t in texts for a in ("--text", t)])
    data = json.loads(out)
    assert code == 0
    _check_report_json(data)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    assert data["num_inputs"] == 3
    assert data["input_tokens"] == [len(tokenizer(t)["input_ids"]) for t in texts]
    assert data["num_tokens"] == sum(data["input_tokens"])
    assert (data["device"], data["dtype"], data["attn_implementation"], data["batch_size"]) == ("cpu", "float32", "eager", 2)
    assert data["num_beams"] is None and data["dataset"] is None and data["runtime_s"] > 0
    assert data["versions"]["torch"] == torch.__version__ and data["versions"]["transformers"] == transformers.__version__
    per_input = data["input_max_abs_err"]
    assert len(per_input) == 3 and max(per_input) == data["max_abs_err"]
    assert per_input[data["worst_input"]] == data["max_abs_err"]
    spread = data["head_max_abs_err"]
    assert 0 < spread["mean"] <= data["max_abs_err"]
    assert spread["p50"] <= spread["p90"] <= spread["p99"] <= data["max_abs_err"]


def test_compare_sdpa_bfloat16(capsys, checkpoints):
    code, out, _ = run(capsys, "compare", "--model", str(checkpoints["t5"]), "--json", "--dtype", "bfloat16",
                       "--attn-implementation", "sdpa", "--max-new-tokens", "4")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True
    assert data["tolerance"] == 4 * 2**-7 and data["attn_implementation"] == "sdpa" and "output" in data["measure"]
    assert {r["kind"] for r in data["results"]} == {"encoder", "decoder", "cross"}  # sdpa: nothing to gather
    code, out, _ = run(capsys, "compare", "--model", str(checkpoints["t5"]), "--dtype", "bfloat16",
                       "--attn-implementation", "sdpa", "--max-new-tokens", "4")
    assert code == 0 and "tolerance 0.03125" in out and "bfloat16, sdpa" in out


def test_compare_cuda_without_a_gpu_exits_2(capsys, checkpoints):
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA GPU here")
    code, out, err = run(capsys, "compare", "--model", str(checkpoints["bert"]), "--device", "cuda")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "no CUDA GPU" in err


def test_compare_missing_dataset_file_exits_2(capsys, checkpoints, tmp_path):
    code, _, err = run(capsys, "compare", "--model", str(checkpoints["bert"]), "--dataset", str(tmp_path / "nope.csv"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no such file" in err


def test_compare_finds_the_text_column_of_a_csv(capsys, checkpoints, tmp_path):
    dataset = tmp_path / "texts.csv"
    dataset.write_text("id,label,text\n1,2,the cat sat on the mat\n2,3,the dog\n")
    code, out, _ = run(capsys, "compare", "--model", str(checkpoints["bert"]), "--dataset", str(dataset), "--json")
    data = json.loads(out)
    assert code == 0 and data["num_inputs"] == 2 and data["dataset"] == str(dataset)


def test_compare_embedded_minilm_by_name(capsys):
    code, out, _ = run(capsys, "compare", "--model", "embedded:all-MiniLM-L6-v2", "--json", "--text", "hello world")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["model"] == "embedded:all-MiniLM-L6-v2"


def test_compare_under_accelerate_launch_merges_two_processes(checkpoints, tmp_path):
    """Two CPU processes, one contiguous shard each: the merged report equals one process's."""
    pytest.importorskip("accelerate", reason="accelerate (dev extra) is not installed")
    import shutil

    dataset = tmp_path / "texts.jsonl"
    rows = ["the cat sat on the mat", "the dog", "the house and the water", "a cat and a dog", "the mat"]
    dataset.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    common = ["-m", "attn_demos.cli", "compare", "--model", str(checkpoints["bert"]), "--dataset", str(dataset),
              "--batch-size", "1", "--json"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    two = subprocess.run(
        [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", *common], capture_output=True, text=True, timeout=300, env=env,
    )
    one = subprocess.run([sys.executable, *common], capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    merged, single = json.loads(two.stdout.strip().splitlines()[-1]), json.loads(one.stdout)
    assert len(two.stdout.strip().splitlines()) == 1  # only the first process prints
    assert merged["processes"] == 2 and merged["num_inputs"] == 5 and merged["num_tokens"] == single["num_tokens"]
    assert merged["input_tokens"] == single["input_tokens"]  # the inputs, in their order
    # The same inputs, but another process's thread count may round differently.
    assert merged["input_max_abs_err"] == pytest.approx(single["input_max_abs_err"], abs=1e-6)
    assert merged["ok"] is single["ok"] is True


NAN_BATCH = ("--dtype", "float64", "--text", "the cat", "--text", "the cat sat on the mat in the house")


def test_compare_json_is_valid_when_the_library_returns_nan(capsys, checkpoints):
    """float64 Llama with left padding: the library's own softmax (float32) gives NaN on real rows
    from layer 1 on (see test_modern_families); the headline is NaN (null in JSON, which stays
    valid), the first NaN site is named with its side, the library's, and why; exit 1."""
    code, out, _ = run(capsys, "compare", "--model", str(checkpoints["llama"]), *NAN_BATCH, "--json")
    data = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert code == 1 and data["ok"] is False
    assert any(r["max_abs_err"] is None for r in data["results"])  # NaN written as null
    assert data["max_abs_err"] is None, "a NaN anywhere makes the headline NaN"
    nan = data["first_nan"]
    assert (nan["kind"], nan["layer"], nan["side"]) == ("decoder", 1, "library")
    assert "float32" in nan["why"] and "padded" in nan["why"]


def test_compare_table_headline_is_nan_when_a_layer_is(capsys, checkpoints):
    code, out, _ = run(capsys, "compare", "--model", str(checkpoints["llama"]), *NAN_BATCH)
    lines = out.splitlines()
    assert code == 1
    assert lines[-2].startswith("MISMATCH: max |Δ| nan")
    assert lines[-1].startswith("NaN: first at input 0, decoder layer 1 head 0; NaN side: library (the library's own")


def test_compare_out_path_that_cannot_be_a_folder_exits_2_before_any_model_runs(minilm_path, tmp_path, capsys):
    """As for view: --out naming a file is a one-line usage error before the model runs (it was a
    traceback after the run, exit 1)."""
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    code, out, err = run(capsys, "compare", "--model", str(minilm_path), "--text", "a cat", "--out", str(taken))
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1].startswith(f"attn-demos compare: --out {taken}: cannot make a folder there")
