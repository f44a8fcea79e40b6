"""`attn-demos view`: a long input's chosen layers and rollout, one layer's maps in memory at a
time, checked against the library's own eager maps (a second method) and refused clearly."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest

from attn_demos.adapters import verify
from attn_demos.adapters.extract import forward_with_attention, vision_side
from attn_demos.adapters.loading import load_model
from attn_demos.cli import main
from attn_demos.core.aggregate import rollout
from attn_demos.errors import BadInputError
from attn_demos.tasks import comparison
from attn_demos.tasks.inputs import tokenize_text
from attn_demos.tasks.long_view import view_long_input

WORDS = "attention lets every token look at every other token and weigh what it finds".split()
MINILM_LAYERS, MINILM_HEADS, MINILM_MAX = 6, 12, 512  # all-MiniLM-L6-v2's config


def long_text(words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def library_maps(folder, text: str) -> np.ndarray:
    """(L, H, T, T): the library's own weights (eager), on the text as the view tokenizes it."""
    eager = load_model(str(folder))
    inputs, side, _ = tokenize_text(eager, text, every_layer=False)
    return forward_with_attention(eager, inputs, side).maps[side_kind(eager)].weights[0].numpy()


def side_kind(loaded) -> str:
    return loaded.family.sites(loaded.model)[0].kind


def test_kept_layers_and_rollout_equal_the_library_eager_maps(minilm_path):
    text = long_text(300)
    view = view_long_input(str(minilm_path), text, layers=(0, -1), rollout=True, attn_implementation="sdpa")
    library = library_maps(minilm_path, text)  # (L, H, T, T)
    assert sorted(view.layers) == [0, MINILM_LAYERS - 1]
    for layer, weights in view.layers.items():
        np.testing.assert_allclose(weights, library[layer], atol=1e-5)
    np.testing.assert_allclose(view.rollout, rollout(library), atol=1e-5)
    assert view.errors.shape == (MINILM_LAYERS, MINILM_HEADS) and view.ok
    assert view.run["tokens"] == library.shape[-1] == len(view.tokens)


def test_only_the_chosen_layers_are_built(minilm_path, site_forms):
    """Without a rollout, the layers not asked for are checked without materialising weights."""
    view_long_input(str(minilm_path), long_text(50), layers=(1,))
    assert [form for _, form in site_forms] == [None, verify.HEADS, None, None, None, None]


def test_a_text_longer_than_the_tabs_budget_is_viewed_whole(minilm_path, use_settings):
    """With 40 MB for maps the tabs (every layer kept) read ~381 tokens; the view keeps one layer
    and a rollout, 14 maps of 512² floats = 14 MB, so it reads the model's full 512."""
    use_settings(maps_budget_mb=40)
    text = long_text(700)
    tab_inputs, _, tab_notices = tokenize_text(load_model(str(minilm_path)), text)
    assert tab_inputs["input_ids"].shape[1] < MINILM_MAX and "ATTN_DEMOS_MAPS_BUDGET_MB" in tab_notices[-1]
    view = view_long_input(str(minilm_path), text, layers=(-1,), rollout=True)
    assert view.run["tokens"] == MINILM_MAX
    assert view.run["kept_mb"] == round((MINILM_HEADS + 2) * MINILM_MAX**2 * 4 / 2**20, 1) <= 40
    assert any("model's limit" in notice for notice in view.notices)


def test_a_view_over_the_budget_is_refused_in_one_line_with_what_fits(minilm_path):
    with pytest.raises(BadInputError) as refused:
        view_long_input(str(minilm_path), long_text(700), layers=(-1,), rollout=True, budget_mb=1)
    message = str(refused.value)
    assert "\n" not in message and "--maps-budget-mb" in message and "ATTN_DEMOS_MAPS_BUDGET_MB" in message
    fits = int(re.search(r"about ([\d,]+) tokens would fit", message).group(1).replace(",", ""))
    per_token_squared = (MINILM_HEADS + 2) * 4  # one layer's heads and the rollout's two maps, float32
    assert per_token_squared * fits**2 <= 2**20 < per_token_squared * (fits + 1) ** 2


def test_cli_writes_the_views_a_report_and_the_maps(minilm_path, tmp_path, capsys):
    source = tmp_path / "long.txt"
    source.write_text(long_text(900), encoding="utf-8")
    out = tmp_path / "views"
    code = main(
        ["view", "--model", str(minilm_path), "--text-file", str(source), "--layer", "-1", "--rollout",
         "--out", str(out), "--save-maps", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["layers_kept"] == [MINILM_LAYERS - 1] and report["rollout"]
    assert len(report["tokens"]) == report["run"]["tokens"] == MINILM_MAX
    assert np.array(report["relative_output_error"]).shape == (MINILM_LAYERS, MINILM_HEADS)
    maps = np.load(out / "maps.npz")
    assert maps[f"layer_{MINILM_LAYERS - 1}"].shape == (MINILM_HEADS, MINILM_MAX, MINILM_MAX)
    np.testing.assert_allclose(maps["rollout"].sum(axis=-1), 1.0, atol=1e-4)  # a product of row-stochastic maps
    assert list(maps["tokens"]) == report["tokens"]
    from PIL import Image

    for name in (f"layer_{MINILM_LAYERS - 1}", f"layer_{MINILM_LAYERS - 1}_heads", "rollout"):
        with Image.open(out / f"{name}.png") as image:
            assert image.width > 300 and image.height > 100


def test_cli_summary_says_verified(minilm_path, capsys):
    assert main(["view", "--model", str(minilm_path), "--text", "The cat sat on the mat."]) == 0
    printed = capsys.readouterr().out
    assert "VERIFIED" in printed and f"layer {MINILM_LAYERS - 1} (12," in printed and "rollout" in printed


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--text", "a cat", "--layer", "6"], "layer 6 does not exist: this model has 6 layers"),
        (["--text", "a cat", "--layer", "-7"], "layer -7 does not exist"),
        (["--text", "   "], "is empty"),
        (["--text-file", "/no/such/file.txt"], "cannot read it as UTF-8 text"),
        (["--text", "a cat", "--maps-budget-mb", "0"], "--maps-budget-mb must be a positive number"),
        (["--image", "/no/such/image.png"], "not a readable image"),
        (["--text", "a cat", "--layer", "0", "--fusion", "max"], "add --rollout, or leave --fusion out"),
        (["--text", "a cat", "--head", "12"], "head 12 does not exist: this model's layers have 12 heads (0–11"),
        (["--text", "a cat", "--rollout", "--head", "0"], "heads are shown of the kept layers: keep a layer too"),
        (["--text", "a cat", "--save-maps"], "--save-maps writes into --out FOLDER: give one"),
    ],
)
def test_cli_bad_inputs_exit_2_in_one_line(minilm_path, capsys, arguments, fragment):
    assert main(["view", "--model", str(minilm_path), *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("attn-demos view: ") and fragment in error


def test_cli_wants_exactly_one_input(minilm_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["view", "--model", str(minilm_path), "--text", "a", "--image", "b.png"])
    assert stopped.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_an_encoder_decoder_and_a_text_for_an_image_model_are_refused(checkpoints):
    with pytest.raises(BadInputError, match="encoder-decoder"):
        view_long_input(str(checkpoints["marian"]), "a cat")
    with pytest.raises(BadInputError, match="vision model: give an image"):
        view_long_input(str(checkpoints["vit"]), "a cat")


def test_decoder_only_view_is_causal_and_equals_the_library(checkpoints):
    text = long_text(40)
    view = view_long_input(str(checkpoints["llama"]), text, layers=(-1,))
    library = library_maps(checkpoints["llama"], text)  # (L, H, T, T)
    weights = view.layers[library.shape[0] - 1]  # (H, T, T)
    np.testing.assert_allclose(weights, library[-1], atol=1e-5)
    assert np.all(np.triu(weights, k=1) == 0.0) and view.ok  # no token attends to a later one


def test_vision_rollout_equals_the_library_rollout(checkpoints):
    eager = load_model(str(checkpoints["vit"]))
    image = comparison.test_pattern(eager)
    pixels = comparison.pixel_values(eager, [image])
    library = forward_with_attention(eager, {"pixel_values": pixels}, vision_side(eager, 1)).maps
    weights = next(iter(library.values())).weights[0].numpy()  # (L, H, T, T)
    view = view_long_input(str(checkpoints["vit"]), image=image, rollout=True)
    patches = 1 + math.prod(d // eager.config.patch_size for d in (eager.config.image_size,) * 2)
    assert view.rollout.shape == (patches, patches) and view.kind == "vision"
    np.testing.assert_allclose(view.rollout, rollout(weights), atol=1e-5)
    assert view.ok


def test_an_out_path_that_cannot_be_a_folder_exits_2_before_any_model_runs(minilm_path, tmp_path, capsys):
    """--out naming a file (or a path under one) is a usage error said in one line, found before
    the model runs; it was a traceback after the whole run, with exit 1 (which means a mismatch)."""
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    for out in (taken, taken / "views"):
        code = main(["view", "--model", str(minilm_path), "--text", "a cat", "--out", str(out)])
        printed = capsys.readouterr()
        assert code == 2 and printed.out == ""  # nothing was run
        assert printed.err.strip().splitlines()[-1].startswith(f"attn-demos view: --out {out}: ")
    assert taken.read_text() == "not a folder"


def test_families_view_cannot_check_are_refused_before_loading_with_what_works(checkpoints, monkeypatch):
    """ALBERT has no known output projection: view cannot check it on any kernel (it said "use
    --attn-implementation eager" even with eager, after loading and starting the pass). Gemma 2 has
    no sdpa kernel: asked for sdpa, view says to use eager (it passed on the library's load error,
    with a hint to check the model id); both refusals come from the config, before any weight is
    read. Left to auto, Gemma 2 runs on eager."""

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    with monkeypatch.context() as patched:
        patched.setattr("attn_demos.tasks.long_view.load_model", no_loading)
        for implementation in ("sdpa", "eager"):
            with pytest.raises(BadInputError, match="'albert'.*no known output projection.*compare") as refused:
                view_long_input(str(checkpoints["albert"]), "a cat", attn_implementation=implementation)
            assert "--attn-implementation eager" not in str(refused.value)
        with pytest.raises(BadInputError, match="'gemma2'.*no sdpa kernel.*--attn-implementation eager"):
            view_long_input(str(checkpoints["gemma2"]), "a cat", attn_implementation="sdpa")
    viewed = view_long_input(str(checkpoints["gemma2"]), "a cat", layers=(0,))  # auto: eager, which it can check
    assert viewed.ok and viewed.run["attn_implementation"] == "eager"


def test_the_budget_counts_float64_maps_at_eight_bytes(minilm_path):
    """With --dtype float64 the kept maps are float64 until the end (the working dtype): 8 bytes a
    cell, so a budget that holds them in float32 but not in float64 refuses."""
    text = long_text(100)
    single = view_long_input(str(minilm_path), text, layers=(0,), rollout=True)
    length = single.run["tokens"]
    in_float32, in_float64 = ((MINILM_HEADS + 2) * length**2 * size / 2**20 for size in (4, 8))
    assert single.run["kept_mb"] == round(in_float32, 1)
    double = view_long_input(str(minilm_path), text, layers=(0,), rollout=True, dtype="float64")
    assert double.run["kept_mb"] == round(in_float64, 1)
    with pytest.raises(BadInputError, match="over the"):
        view_long_input(
            str(minilm_path), text, layers=(0,), rollout=True, dtype="float64", budget_mb=(in_float32 + in_float64) / 2
        )


def test_a_wrong_recomputation_exits_1_and_says_how_many_heads_failed(minilm_path, monkeypatch, capsys):
    """The control: heads 0 and 1 exchanged in every layer's terms: 2 × 6 of the 72 heads fail, exit
    1, and the verdict says so (it read "MISMATCH: every head's weights·v reproduces its module's output")."""
    original = verify.attention_terms

    def swapped(*args, **kwargs):
        terms = original(*args, **kwargs)
        order = [1, 0, *range(2, terms.q.shape[1])]
        return replace(terms, q=terms.q[:, order], k=terms.k[:, order])

    monkeypatch.setattr(verify, "attention_terms", swapped)
    assert main(["view", "--model", str(minilm_path), "--text", "The cat sat on the mat.", "--layer", "0"]) == 1
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    failing, total = 2 * MINILM_LAYERS, MINILM_LAYERS * MINILM_HEADS
    assert verdict.startswith(f"MISMATCH: {failing} of {total} heads") and "every head" not in verdict


def test_the_progress_bar_leaves_no_hook_behind(minilm_path, monkeypatch, capsys):
    """The bar's hooks live for one pass: on a model used again (as a cache would), each attention
    module keeps only the hooks it had (the verification's own, installed once), and the same
    view gives the same maps."""
    from attn_demos.tasks import long_view

    shared = load_model(str(minilm_path), attn_implementation="sdpa")
    monkeypatch.setattr(long_view, "load_model", lambda *args, **kwargs: shared)
    first = view_long_input(str(minilm_path), long_text(30), layers=(0,), progress=True)
    modules = [site.module for site in shared.family.sites(shared.model)]
    before = [len(module._forward_hooks) for module in modules]
    second = view_long_input(str(minilm_path), long_text(30), layers=(0,), progress=True)
    assert [len(module._forward_hooks) for module in modules] == before
    np.testing.assert_array_equal(first.layers[0], second.layers[0])
    assert "layers" in capsys.readouterr().err  # the bar was drawn on stderr


def test_cli_draws_chosen_heads_of_each_kept_layer(minilm_path, tmp_path, capsys):
    out = tmp_path / "views"
    arguments = ["view", "--model", str(minilm_path), "--text", "The cat sat on the mat.", "--layer", "0",
                 "--layer", "-1", "--head", "3", "--head", "-1", "--head", "3", "--out", str(out), "--json"]
    assert main(arguments) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["heads_shown"] == [3, MINILM_HEADS - 1]  # -1 is the last head; a repeat is drawn once
    drawn = sorted(path.name for path in out.glob("layer_*_head_*.png"))
    assert drawn == sorted(
        f"layer_{layer}_head_{head}.png" for layer in (0, MINILM_LAYERS - 1) for head in (3, MINILM_HEADS - 1)
    )


def small_view(layers: tuple[int, ...], with_rollout: bool) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """Row-stochastic random maps of 2 heads over 4 tokens for `layers`, and a rollout if asked."""
    generator = np.random.default_rng(0)
    maps = {layer: generator.dirichlet(np.ones(4), size=(2, 4)).astype(np.float32) for layer in layers}  # (H, T, T)
    return maps, (maps[layers[0]].mean(axis=0) if with_rollout else None)


def test_a_view_written_over_an_earlier_one_removes_only_the_earlier_views_files(tmp_path):
    from attn_demos.render.view_files import write_view_files

    tokens = ["a", "b", "c", "d"]
    layers, rolled = small_view((0, 1), with_rollout=True)
    first, removed = write_view_files(tmp_path, "encoder", tokens, layers, rolled, {"ok": True}, save_maps=True, heads=[1])
    assert removed == []
    listed = json.loads((tmp_path / "report.json").read_text())["files"]
    assert sorted(listed) == sorted(p.name for name, p in first.items() if name != "report")
    (tmp_path / "notes.txt").write_text("mine")  # the user's own files, one named like a view's
    (tmp_path / "layer_7.png").write_bytes(b"not from a view")

    layers, _ = small_view((1,), with_rollout=False)
    second, removed = write_view_files(tmp_path, "encoder", tokens, layers, None, {"ok": True})

    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*(p.name for p in second.values()), "notes.txt", "layer_7.png"])
    assert sorted(p.name for p in removed) == [
        "layer_0.png", "layer_0_head_1.png", "layer_0_heads.png", "layer_1_head_1.png", "maps.npz", "rollout.png"
    ]
    assert json.loads((tmp_path / "report.json").read_text())["files"] == ["layer_1.png", "layer_1_heads.png"]


@pytest.mark.parametrize("earlier", ["not json {", '["a list"]', '{"files": "layer_0.png"}', '{"files": ["../outside.png", "/etc/x", ".hidden"]}'])
def test_an_unreadable_or_odd_earlier_report_removes_nothing(tmp_path, earlier):
    from attn_demos.render.view_files import write_view_files

    folder = tmp_path / "views"
    folder.mkdir()
    (folder / "report.json").write_text(earlier)
    for name in ("layer_0.png", ".hidden"):
        (folder / name).write_text("kept")
    (tmp_path / "outside.png").write_text("kept")
    layers, _ = small_view((1,), with_rollout=False)
    _, removed = write_view_files(folder, "encoder", ["a", "b", "c", "d"], layers, None, {"ok": True})
    assert removed == []
    assert (folder / "layer_0.png").exists() and (folder / ".hidden").exists() and (tmp_path / "outside.png").exists()


def test_cli_says_which_files_of_an_earlier_view_it_removed(minilm_path, tmp_path, capsys):
    out = tmp_path / "views"
    text = ["--model", str(minilm_path), "--text", "The cat sat on the mat.", "--out", str(out)]
    assert main(["view", *text, "--layer", "0", "--rollout"]) == 0
    capsys.readouterr()
    assert main(["view", *text, "--layer", "1"]) == 0
    err = capsys.readouterr().err
    assert "removed the earlier view's" in err and "rollout.png" in err and "layer_0.png" in err
    assert sorted(p.name for p in out.glob("*.png")) == ["layer_1.png", "layer_1_heads.png"]


def test_another_tools_report_json_removes_only_names_a_view_writes(tmp_path):
    """report.json is a common name: a listing that is not a view's (another tool's data, a name
    differing only in case) must not make a view delete those files."""
    from attn_demos.render.view_files import write_view_files

    others = ("data.csv", "Rollout.png", "layer_0.PNG", "layer_x.png", "maps.npz.bak")
    for name in (*others, "layer_0.png"):
        (tmp_path / name).write_text("kept")
    (tmp_path / "report.json").write_text(json.dumps({"files": [*others, "layer_0.png"]}))
    layers, _ = small_view((1,), with_rollout=False)
    _, removed = write_view_files(tmp_path, "encoder", ["a", "b", "c", "d"], layers, None, {"ok": True})
    assert [p.name for p in removed] == ["layer_0.png"]  # the control: a view's name is still removed
    assert all((tmp_path / name).read_text() == "kept" for name in others)


def test_a_report_nested_too_deep_to_read_removes_nothing(tmp_path):
    from attn_demos.render.view_files import write_view_files

    depth = 100_000  # beyond the json module's recursion limit
    (tmp_path / "report.json").write_text('{"files": ' + "[" * depth + "]" * depth + "}")
    (tmp_path / "layer_0.png").write_text("kept")
    layers, _ = small_view((1,), with_rollout=False)
    _, removed = write_view_files(tmp_path, "encoder", ["a", "b", "c", "d"], layers, None, {"ok": True})
    assert removed == [] and (tmp_path / "layer_0.png").exists()
