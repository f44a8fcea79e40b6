"""The settings: every ATTN_DEMOS_* variable read once (Settings.from_env), a bad value refused in
one line that names the variable, and the CLI's flags reaching the app on top of the environment
without the CLI writing os.environ."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from attn_demos import cli, settings
from attn_demos.settings import Settings, SettingsError, variable
from attn_demos.tasks import registry
from attn_demos.ui.common import user_models_allowed

# variable -> (value in the environment, the field it sets, the value read)
READ = {
    "ATTN_DEMOS_DEVICE": ("cuda:1", "device", "cuda:1"),
    "ATTN_DEMOS_ATTN_IMPLEMENTATION": ("sdpa", "attn_implementation", "sdpa"),
    "ATTN_DEMOS_MAPS_BUDGET_MB": ("40.5", "maps_budget_mb", 40.5),
    "ATTN_DEMOS_KEPT_MB": ("100", "kept_mb", 100.0),
    "ATTN_DEMOS_ALLOW_USER_MODELS": ("1", "allow_user_models", True),
    "ATTN_DEMOS_EXPLORE_MODEL": ("/models/bert", "explore_model", "/models/bert"),
    "ATTN_DEMOS_TRANSLATE_MODEL": ("Helsinki-NLP/opus-mt-en-fr", "translate_model", "Helsinki-NLP/opus-mt-en-fr"),
    "ATTN_DEMOS_ANSWER_MODEL": ("/models/qa", "answer_model", "/models/qa"),
    "ATTN_DEMOS_SUMMARIZE_MODEL": ("/models/bart", "summarize_model", "/models/bart"),
    "ATTN_DEMOS_CLASSIFY_IMAGE_MODEL": ("/models/vit", "classify_image_model", "/models/vit"),
    "ATTN_DEMOS_GENERATE_MODEL": ("/models/llama", "generate_model", "/models/llama"),
    "ATTN_DEMOS_MAX_CHARACTERS": ("5000", "max_characters", 5000),
    "ATTN_DEMOS_MAX_TOKENS": ("256", "max_tokens", 256),
    "ATTN_DEMOS_MAX_MATRIX_ROWS": ("8", "max_matrix_rows", 8),
    "ATTN_DEMOS_MAX_MATRIX_COLUMNS": ("9", "max_matrix_columns", 9),
    "ATTN_DEMOS_MAX_MATRIX_CELLS": ("72", "max_matrix_cells", 72),
    "ATTN_DEMOS_MAX_IMAGE_PIXELS": ("1000000", "max_image_pixels", 1_000_000),
    "ATTN_DEMOS_MAX_UPLOAD_MB": ("2.5", "max_upload_mb", 2.5),
    "ATTN_DEMOS_MAX_BODY_MB": ("1", "max_body_mb", 1.0),
    "GRADIO_SERVER_NAME": ("0.0.0.0", "host", "0.0.0.0"),
    "GRADIO_SERVER_PORT": ("8080", "port", 8080),
}

BAD = {
    "ATTN_DEMOS_DEVICE": ["tpu", "cuda:x", "auto:0"],
    "ATTN_DEMOS_ATTN_IMPLEMENTATION": ["flash", "EAGER"],
    "ATTN_DEMOS_MAPS_BUDGET_MB": ["0", "-5", "lots", "nan", "inf"],
    "ATTN_DEMOS_KEPT_MB": ["0", "many"],
    "ATTN_DEMOS_ALLOW_USER_MODELS": ["maybe", "2"],
    "GRADIO_SERVER_PORT": ["http", "0", "70000"],
    "ATTN_DEMOS_MAX_CHARACTERS": ["0", "-5", "1.5", "²", "many"],
    "ATTN_DEMOS_MAX_IMAGE_PIXELS": ["1e6", "0"],
    "ATTN_DEMOS_MAX_BODY_MB": ["0", "nan"],
}


@pytest.mark.parametrize("name", READ)
def test_each_variable_is_read_into_its_setting(name):
    text, field, value = READ[name]
    read = Settings.from_env({name: text})
    assert getattr(read, field) == value
    assert read == Settings(**{field: value})  # and nothing else changes


def test_no_variables_or_empty_ones_are_the_defaults():
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({name: "" for name in READ}) == Settings()
    assert Settings() == Settings(device="auto", attn_implementation="auto", maps_budget_mb=1024, kept_mb=4096,
                                  allow_user_models=False, host="127.0.0.1", port=7860)


@pytest.mark.parametrize("text", ["0", "false", "No", "off"])
def test_user_models_are_switched_off_by_any_no(text):
    assert Settings.from_env({"ATTN_DEMOS_ALLOW_USER_MODELS": text}).allow_user_models is False


@pytest.mark.parametrize(("name", "text"), [(name, text) for name, texts in BAD.items() for text in texts])
def test_a_bad_value_is_one_line_that_names_the_variable_and_the_value(name, text):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: text})
    message = str(refused.value)
    assert message.startswith(f"{name} must be ") and repr(text) in message and "\n" not in message


@pytest.mark.parametrize("task", registry.TASK_AUTO_CLASSES)
def test_every_tab_model_is_a_setting(task, use_settings):
    assert registry.model_source(task) == registry.DEFAULT_MODELS[task]
    chosen = Settings.from_env({variable(f"{task}_model"): "/models/mine"})
    use_settings(**{f"{task}_model": chosen.model(task)})
    assert registry.model_source(task) == "/models/mine"


def test_use_and_using_put_settings_in_force_and_back():
    before = settings.current()
    with settings.using(Settings(kept_mb=1)) as inside:
        assert settings.current() is inside and settings.current().kept_mb == 1
    assert settings.current() is before


# ---------------------------------------------------------------- the CLI --------------------------


@pytest.fixture
def served(monkeypatch):
    """`attn-demos launch` without a server: what the app would read while it serves, per launch."""
    from attn_demos.ui import app

    seen = []
    monkeypatch.setattr(app, "build", lambda: "the app")
    monkeypatch.setattr(app, "launch", lambda demo, **kwargs: seen.append(
        (settings.current(), registry.model_source("translate"), user_models_allowed(), kwargs)))
    for name in READ:
        monkeypatch.delenv(name, raising=False)
    return seen


def test_the_cli_puts_its_flags_on_top_of_the_environment():
    flags = argparse.Namespace(command="view", device="cpu", attn_implementation=None, maps_budget_mb=None)
    environ = {"ATTN_DEMOS_DEVICE": "cuda", "ATTN_DEMOS_ATTN_IMPLEMENTATION": "eager", "ATTN_DEMOS_KEPT_MB": "64"}
    chosen = cli.command_settings(flags, environ)
    assert chosen == Settings(device="cpu", attn_implementation="eager", kept_mb=64)


def test_launch_flags_reach_the_app_without_touching_the_environment(served):
    environment = dict(os.environ)
    argv = ["launch", "--device", "cpu", "--attn-implementation", "eager", "--allow-user-models",
            "--translate-model", "/models/marian", "--host", "0.0.0.0", "--port", "8080", "--share"]
    assert cli.main(argv) == cli.EXIT_OK
    chosen, translate_model, allowed, kwargs = served[-1]
    assert (chosen.device, chosen.attn_implementation, chosen.host, chosen.port) == ("cpu", "eager", "0.0.0.0", 8080)
    assert translate_model == "/models/marian" and allowed is True and kwargs["share"] is True
    assert dict(os.environ) == environment
    assert not user_models_allowed() and registry.model_source("translate") == registry.DEFAULT_MODELS["translate"]


def test_a_flag_wins_over_its_variable_and_a_variable_holds_without_its_flag(served, monkeypatch):
    monkeypatch.setenv("ATTN_DEMOS_TRANSLATE_MODEL", "/models/from-env")
    monkeypatch.setenv("ATTN_DEMOS_ALLOW_USER_MODELS", "1")
    monkeypatch.setenv("ATTN_DEMOS_DEVICE", "cpu")
    assert cli.main(["launch"]) == cli.EXIT_OK
    chosen, translate_model, allowed, _ = served[-1]
    assert translate_model == "/models/from-env" and allowed is True and chosen.device == "cpu"
    assert cli.main(["launch", "--translate-model", "/models/from-flag", "--device", "auto"]) == cli.EXIT_OK
    chosen, translate_model, _, _ = served[-1]
    assert translate_model == "/models/from-flag" and chosen.device == "auto"


def test_a_quick_command_leaves_the_environment_and_the_settings_as_they_were(capsys):
    environment, before = dict(os.environ), settings.current()
    assert cli.main(["basics", "--json"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["torch_vs_numpy_max_abs_diff"] < 1e-12
    assert dict(os.environ) == environment and settings.current() is before


def test_a_bad_variable_stops_any_command_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ATTN_DEMOS_DEVICE", "tpu")
    assert cli.main(["basics"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error == "attn-demos basics: ATTN_DEMOS_DEVICE must be one of auto, cpu, cuda, mps (or cuda:N), got 'tpu'\n"


def test_view_defaults_to_auto_which_is_sdpa_there_and_honours_the_variable(monkeypatch, capsys):
    """One default, auto, for every command; for view auto is sdpa on any device (its --help says why)."""
    monkeypatch.delenv("ATTN_DEMOS_ATTN_IMPLEMENTATION", raising=False)
    argv = ["view", "--text", "the cat sat on the mat", "--layer", "0", "--json", "--device", "cpu"]
    assert cli.main(argv) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["run"]["attn_implementation"] == "sdpa"
    monkeypatch.setenv("ATTN_DEMOS_ATTN_IMPLEMENTATION", "eager")
    assert cli.main(argv) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out)["run"]["attn_implementation"] == "eager"


@pytest.mark.parametrize("command", ["compare", "view", "launch"])
def test_every_command_says_its_attn_implementation_default_in_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Default $ATTN_DEMOS_ATTN_IMPLEMENTATION, else auto:" in help_text
    if command == "view":
        assert "auto: sdpa on any device (eager would make the library hold every layer's maps" in help_text
