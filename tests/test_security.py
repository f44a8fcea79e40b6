"""Security of the hosted demos: where the app listens, what files it serves, where exports go and
when they disappear, who may choose a model, and what the package source never does (remote
code, eval/exec, unpickling). HTTP requests go to 127.0.0.1 only."""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from attn_demos.ui import wiring

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attn_demos"
SOURCES = [*PACKAGE.rglob("*.py"), *(ROOT / "apps").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]


# ---------------------------------------------------------------- where the app listens ---------


@pytest.fixture(scope="module")
def app_module(app_server):
    """attn_demos.ui.app and the app it built (started without --allow-user-models)."""
    from attn_demos.ui import app

    demo, _ = app_server
    return types.SimpleNamespace(demo=demo, launch=lambda **kwargs: app.launch(demo, **kwargs))


@pytest.fixture
def launch_calls(app_module, monkeypatch):
    """Every launch() reaches demo.launch; record its keyword arguments instead of starting a server."""
    calls = []
    monkeypatch.setattr(app_module.demo, "launch", lambda **kwargs: calls.append(kwargs))
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_SHARE"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_launch_listens_on_localhost_without_a_share_link_by_default(app_module, launch_calls, monkeypatch):
    monkeypatch.setenv("GRADIO_SHARE", "True")  # Gradio reads this only when share is not passed
    app_module.launch()
    assert launch_calls[-1]["server_name"] == "127.0.0.1"
    assert launch_calls[-1]["share"] is False
    assert "allowed_paths" not in launch_calls[-1]


def test_launch_honours_gradio_server_name_and_explicit_choices(app_module, launch_calls, use_settings):
    from attn_demos.settings import Settings

    use_settings(host=Settings.from_env({"GRADIO_SERVER_NAME": "0.0.0.0"}).host)  # what Hugging Face Spaces sets
    app_module.launch()
    assert launch_calls[-1]["server_name"] == "0.0.0.0" and launch_calls[-1]["share"] is False
    app_module.launch(host="127.0.0.2")
    assert launch_calls[-1]["server_name"] == "127.0.0.2"
    app_module.launch(share=True)
    assert launch_calls[-1]["share"] is True


def test_cli_launch_listens_on_localhost_without_a_share_link_unless_asked(monkeypatch):
    """`attn-demos launch` serves on the settings' host (127.0.0.1 / $GRADIO_SERVER_NAME, or --host)."""
    from attn_demos import cli, settings
    from attn_demos.ui import app

    calls = []
    monkeypatch.setattr(app, "build", lambda: "the app")
    monkeypatch.setattr(app, "launch", lambda demo, **kwargs: calls.append((settings.current(), kwargs)))
    for name in ("GRADIO_SERVER_NAME", "ATTN_DEMOS_ALLOW_USER_MODELS"):
        monkeypatch.delenv(name, raising=False)
    environment = dict(os.environ)
    assert cli.main(["launch"]) == 0
    chosen, kwargs = calls[-1]
    assert chosen.host == "127.0.0.1" and kwargs["share"] is False and chosen.allow_user_models is False
    assert cli.main(["launch", "--share", "--host", "0.0.0.0"]) == 0
    chosen, kwargs = calls[-1]
    assert chosen.host == "0.0.0.0" and kwargs["share"] is True
    assert dict(os.environ) == environment


def test_model_box_is_hidden_without_the_flag(app_module):
    boxes = [c for c in app_module.demo.config["components"]
             if c.get("props", {}).get("label", "").startswith("Model (Hub id or local folder")]
    assert len(boxes) == 6  # every model tab (Explorer, Translation, QA, Summarization, Image, Text generation)
    assert all(box["props"]["visible"] is False for box in boxes)


# ---------------------------------------------------------------- what the running app serves ---


@pytest.fixture(scope="module")
def served(app_server):
    from gradio_client import Client

    _, url = app_server
    assert urllib.parse.urlparse(url).hostname == "127.0.0.1"
    return url, Client(url, verbose=False)


def http_get(url: str) -> tuple[int, bytes]:
    assert urllib.parse.urlparse(url).hostname == "127.0.0.1"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def explore_outputs(served) -> dict:
    from attn_demos.ui.explorer import RUN_OUTPUTS

    _, client = served
    values = client.predict("Attention is all you need.", 0, "mean", False, "", api_name="/explore")
    out = dict(zip(wiring.api_outputs(RUN_OUTPUTS), values))
    _, out["png"], out["json"] = client.predict(0, "mean", False, api_name="/explore_export")
    return out


def test_the_apps_own_output_files_are_served(served, explore_outputs):
    """The control for the refusals below: this URL form does serve files the app produced."""
    url, _ = served
    status, body = http_get(url + "gradio_api/file=" + explore_outputs["png"])
    assert status == 200 and body.startswith(b"\x89PNG")


def outside_files(checkpoints) -> dict[str, str]:
    from attn_demos.render.export import owner_file
    from attn_demos.ui.common import export_folder

    return {
        "/etc/passwd": "/etc/passwd",
        "repo pyproject.toml (absolute)": str(ROOT / "pyproject.toml"),
        "repo pyproject.toml (relative to the working directory)": "pyproject.toml",
        "app source": str(ROOT / "apps" / "app.py"),
        "model checkpoint config": str(checkpoints["bert"] / "config.json"),
        "traversal ../": "../../../../../../etc/passwd",
        "traversal through /etc/..": "/etc/../etc/passwd",
        "url-encoded": urllib.parse.quote("/etc/passwd", safe=""),
        "export folder (a listing)": str(export_folder()),
        "export folder's owner lock": str(owner_file(export_folder())),
    }


@pytest.mark.parametrize("route", ["gradio_api/file=", "gradio_api/file/", "file="])
def test_files_outside_the_apps_outputs_are_refused(served, explore_outputs, checkpoints, route):
    url, _ = served
    for name, path in outside_files(checkpoints).items():
        status, body = http_get(url + route + path)
        assert 400 <= status < 500, (name, status)
        assert b"root:" not in body and b"[project]" not in body and b"model_type" not in body, name


def test_model_id_in_a_request_is_refused_without_the_flag(served):
    from attn_demos.ui.explorer import RUN_OUTPUTS

    _, client = served
    names = wiring.api_outputs(RUN_OUTPUTS)
    for model in ("gpt2", "/etc", "https://example.invalid/model", "../../etc"):
        out = dict(zip(names, client.predict("hello", 0, "mean", False, model, api_name="/explore")))
        assert out["status"] == (
            "⚠️ this app serves its configured models only (start it with --allow-user-models)"
        )
        assert out["numbers"] is None and out["png"] is None


# ---------------------------------------------------------------- exports -----------------------


def test_exports_go_to_a_private_per_process_folder(use_settings, checkpoints):
    from attn_demos.ui import explorer
    from attn_demos.ui.common import export_folder

    use_settings(explore_model=str(checkpoints["bert"]))
    run = explorer.explore("the cat sat", 0, "mean", False, "")
    out = explorer.export(run["state"], run["inputs"], 0, "mean", False)
    folder = export_folder()
    assert Path(out["png"]).parent.parent == folder and Path(out["json"]).parent == Path(out["png"]).parent
    assert folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("attn-demos-exports-")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # other users cannot list or read exports
    assert json.loads(Path(out["json"]).read_text())["query_tokens"] == ["[CLS]", "the", "cat", "sat", "[SEP]"]


def test_exports_older_than_their_retention_are_removed_at_the_next_export(use_settings, checkpoints):
    from attn_demos.ui import explorer
    from attn_demos.ui.common import EXPORT_MAX_AGE, export_folder

    use_settings(explore_model=str(checkpoints["bert"]))
    folder = export_folder()
    old, recent = folder / "attention-old.png", folder / "attention-recent.png"
    for path, age in ((old, EXPORT_MAX_AGE + 60), (recent, EXPORT_MAX_AGE - 60)):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age, time.time() - age))
    run = explorer.explore("the cat", 0, "mean", False, "")
    out = explorer.export(run["state"], run["inputs"], 0, "mean", False)
    assert not old.exists() and recent.exists()
    assert Path(out["png"]).exists() and Path(out["json"]).exists()
    recent.unlink()


EXPORT_AND_EXIT = r"""
import os, sys
from attn_demos import settings
settings.use(settings.Settings(explore_model=sys.argv[1]))
from attn_demos.ui import explorer
from attn_demos.ui.common import export_folder
run = explorer.explore("the cat sat", 0, "mean", False, "")
out = explorer.export(run["state"], run["inputs"], 0, "mean", False)
assert os.path.dirname(os.path.dirname(out["png"])) == str(export_folder()) and os.path.exists(out["json"])
print(export_folder())
"""


def test_export_folder_is_removed_when_the_process_exits(checkpoints):
    run = subprocess.run(
        [sys.executable, "-c", EXPORT_AND_EXIT, str(checkpoints["bert"])],
        capture_output=True, text=True, timeout=180, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    folder = Path(run.stdout.strip().splitlines()[-1])
    assert folder.name.startswith("attn-demos-exports-")
    assert not folder.exists()


# ---------------------------------------------------------------- code a checkpoint ships --------


def test_a_tokenizer_that_asks_for_remote_code_loads_without_running_it(checkpoints, tmp_path):
    """A supported model whose tokenizer_config names custom code: the code never runs."""
    from attn_demos.adapters.loading import load_model

    folder = tmp_path / "custom-tokenizer"
    shutil.copytree(checkpoints["bert"], folder)
    marker = tmp_path / "REMOTE_CODE_RAN"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="FancyTokenizer", auto_map={"AutoTokenizer": ["tokenization_fancy.FancyTokenizer", None]})
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "tokenization_fancy.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    try:
        loaded = load_model(str(folder))
    except Exception as error:  # refusing is fine too; running the file is not
        assert "Traceback" not in str(error)
    else:
        assert loaded.preprocessor("the cat")["input_ids"]
    assert not marker.exists()


# ---------------------------------------------------------------- weights a folder sends the loader to


class _Unpickled:
    """Unpickling this calls open(path, 'w'): proof, if the file appears, that a pickle was loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def nothing_parsed(monkeypatch):
    """Fails the test if transformers is asked to read the folder's config (or anything after it)."""
    import transformers

    def parsed(*args, **kwargs):
        raise AssertionError("the folder was parsed before it was refused")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", parsed)


def _sharded_bert(checkpoints, folder: Path, weight_map: dict) -> Path:
    shutil.copytree(checkpoints["bert"], folder)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def test_an_index_that_maps_weights_to_a_pickle_is_refused_before_anything_is_parsed(checkpoints, tmp_path, nothing_parsed):
    """The pickle refusal looked for *.safetensors or an index, and an index naming pytorch_model.bin
    passed it: transformers then opened the pickle."""
    import torch

    from attn_demos.adapters.loading import load_model
    from attn_demos.errors import ModelLoadError

    folder = _sharded_bert(checkpoints, tmp_path / "index-to-pickle", {"pooler.dense.weight": "pytorch_model.bin"})
    marker = tmp_path / "PICKLE_LOADED"
    torch.save({"pooler.dense.weight": torch.zeros(2), "payload": _Unpickled(str(marker))}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"pickle weights beside its safetensors \(pytorch_model.bin\)"):
        load_model(folder)
    (folder / "pytorch_model.bin").rename(tmp_path / "pytorch_model.bin")  # the index alone names it
    with pytest.raises(ModelLoadError, match=r"index.json names weights that are not safetensors files beside it"):
        load_model(folder)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../outside/model.safetensors", "/tmp/model.safetensors", "weights.pt"])
def test_an_index_naming_a_file_elsewhere_or_not_safetensors_is_refused(checkpoints, tmp_path, nothing_parsed, name):
    from attn_demos.adapters.loading import load_model
    from attn_demos.errors import ModelLoadError

    folder = _sharded_bert(checkpoints, tmp_path / "index", {"pooler.dense.weight": name})
    with pytest.raises(ModelLoadError, match="names weights that are not safetensors files beside it"):
        load_model(folder)


def test_a_hub_checkpoint_whose_index_maps_to_a_pickle_is_refused(checkpoints, tmp_path):
    """The same through the Hub cache (offline): the index is read before transformers loads."""
    snapshot = tmp_path / "hub" / "models--someone--sharded" / "snapshots" / ("0" * 40)
    _sharded_bert(checkpoints, snapshot, {"pooler.dense.weight": "pytorch_model.bin"})
    (tmp_path / "hub" / "models--someone--sharded" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--sharded" / "refs" / "main").write_text("0" * 40)
    done = subprocess.run(
        [sys.executable, "-m", "attn_demos.cli", "compare", "--model", "someone/sharded"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2 and done.stdout == "", done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        "attn-demos compare: someone/sharded: model.safetensors.index.json names weights that are not safetensors "
        "files beside it (pytorch_model.bin); attn-demos loads safetensors only"
    ]


def test_every_spelling_of_a_folder_is_one_model(checkpoints, tmp_path):
    """`model/`, `model/.` and a link to it: one load, one copy in memory (each was another copy)."""
    from attn_demos.tasks.registry import get_model

    folder = tmp_path / "spelled" / "bert"
    shutil.copytree(checkpoints["bert"], folder)
    (tmp_path / "link").symlink_to(folder)
    spellings = [str(folder), f"{folder}/", f"{folder}/.", f"{folder}/../bert", str(tmp_path / "link")]
    loaded = [get_model("explore", spelling) for spelling in spellings]
    assert all(model is loaded[0] for model in loaded)


# ---------------------------------------------------------------- the source itself -------------


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def test_trust_remote_code_is_only_ever_false():
    occurrences = []
    for path in SOURCES:
        text = path.read_text()
        occurrences += [(path, line) for line in text.splitlines() if "trust_remote_code" in line]
        for call in _calls(ast.parse(text)):
            for keyword in call.keywords:
                if keyword.arg == "trust_remote_code":
                    assert isinstance(keyword.value, ast.Constant) and keyword.value.value is False, path
    assert occurrences, "the loader passes trust_remote_code=False explicitly"
    for path, line in occurrences:
        if path.is_relative_to(PACKAGE):
            assert line.count("trust_remote_code") == line.count("trust_remote_code=False"), (path, line)


def test_no_eval_exec_or_unpickling_in_the_package():
    forbidden_calls = {"eval", "exec", "compile", "pickle.load", "pickle.loads", "torch.load", "marshal.loads",
                       "dill.load", "joblib.load"}
    forbidden_modules = {"pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for call in _calls(tree):
            assert _dotted(call.func) not in forbidden_calls, (path, call.lineno, _dotted(call.func))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & forbidden_modules, (path, node.lineno)
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in forbidden_modules, (path, node.lineno)


def test_weights_are_loaded_from_safetensors_only():
    tree = ast.parse((PACKAGE / "adapters" / "loading.py").read_text())
    model_loads = [c for c in _calls(tree)
                   if _dotted(c.func) == "model_class.from_pretrained"]
    assert model_loads
    for call in model_loads:
        keywords = {k.arg: k.value for k in call.keywords}
        assert isinstance(keywords.get("use_safetensors"), ast.Constant) and keywords["use_safetensors"].value is True


def test_apps_never_open_a_share_link_or_extra_paths_on_their_own():
    for path in [*(ROOT / "apps").rglob("*.py"), *PACKAGE.rglob("*.py")]:
        for call in _calls(ast.parse(path.read_text())):
            for keyword in call.keywords:
                if keyword.arg == "share":
                    assert not (isinstance(keyword.value, ast.Constant) and keyword.value.value is True), path
                assert keyword.arg != "allowed_paths", (path, call.lineno)
