"""The tabs' attention implementation per device (issue 11, item 2): the rule, the launcher flag,
and every tab under sdpa, where the maps shown are the core's recomputed weights verified through
the model's own output. The second method is the eager run of the same checkpoint (the library's
weights); the control is a wrong recomputation (heads 0 and 1 swapped), which the badge must report."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_precision import _swap_heads_0_1, _wrong_terms

from attn_demos import cli
from attn_demos.adapters.precision import tolerance_for
from attn_demos.tasks import registry
from attn_demos.tasks.explorer import explore
from attn_demos.tasks.hardware import attn_implementation_for
from attn_demos.tasks.images import classify_image
from attn_demos.tasks.qa import answer
from attn_demos.tasks.seq2seq import translate

# sdpa's shown maps vs eager's library weights: two kernels computing the same float32 weights in
# another order, which is what the project's one rule (precision.tolerance_for) bounds.
SAME = tolerance_for(torch.float32)
OUTPUT_BADGE = "verified through the model's own output (sdpa)"
TEXT = "The cat sat on the mat."
QUESTION, CONTEXT = "Where did the cat sleep?", "The cat slept on the warm windowsill all afternoon."


@pytest.fixture
def implementation(use_settings):
    """implementation(name): the tabs load their models with `name` on the CPU from now on (this test only)."""
    use_settings(device="cpu")

    def use(name: str) -> None:
        use_settings(attn_implementation=name)

    return use


def _image() -> Image.Image:
    y, x = np.mgrid[0:64, 0:64]
    return Image.fromarray(np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8))  # (64, 64, 3)


def run_tab(tab: str, checkpoints):
    """The tab's task function on its tiny checkpoint; returns (result, one view, the maps shown)."""
    if tab == "explore":
        result = explore(TEXT, source=str(checkpoints["bert"]))
        return result, result.view(1, 2), result.shown
    if tab == "answer":
        result = answer(QUESTION, CONTEXT, source=str(checkpoints["distilbert"]))
        return result, result.view(0, "mean"), result.shown
    if tab == "classify_image":
        result = classify_image(_image(), source=str(checkpoints["vit"]))
        return result, result.view(1, 0), result.shown
    family = tab.split(":")[1]
    result = translate(TEXT, source=str(checkpoints[family]), num_beams=2, max_new_tokens=6)
    return result, result.cross_view(0, 1), result.cross_shown


TABS = ("explore", "answer", "classify_image", "translate:marian", "translate:bart", "translate:t5")


# ---------------------------------------------------------------- the rule ------------------------


def test_auto_is_sdpa_on_cuda_and_eager_elsewhere():
    assert attn_implementation_for("cuda", "explore", "auto") == "sdpa"
    assert attn_implementation_for("cpu", "explore", "auto") == "eager"
    assert attn_implementation_for("mps", "translate", "auto") == "eager"
    assert attn_implementation_for("cuda", "explore", "auto", sdpa_checkable=False) == "eager"
    assert attn_implementation_for("cpu", "answer", "sdpa") == "sdpa"  # an explicit choice holds on any device
    assert attn_implementation_for("cuda", "answer", "eager") == "eager"
    assert attn_implementation_for("cpu", "compare", "auto") == "eager"  # compare's CPU reports stay eager


def test_auto_is_sdpa_for_view_on_any_device_unless_its_output_cannot_be_checked():
    assert attn_implementation_for("cpu", "view", "auto") == "sdpa"
    assert attn_implementation_for("cuda", "view", "auto") == "sdpa"
    assert attn_implementation_for("cpu", "view", "auto", sdpa_checkable=False) == "eager"
    assert attn_implementation_for("cpu", "view", "eager") == "eager"


@pytest.mark.parametrize("choice", ["auto", "eager", "sdpa"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_text_generation_is_eager_whatever_the_setting(choice, device):
    assert attn_implementation_for(device, "generate", choice) == "eager"


def test_no_choice_is_the_settings_choice(use_settings):
    assert attn_implementation_for("cpu", "explore") == "eager"  # the default: auto
    use_settings(attn_implementation="sdpa")
    assert attn_implementation_for("cpu", "explore") == "sdpa"


def test_auto_on_cuda_stays_eager_where_the_sdpa_output_cannot_be_checked(use_settings, checkpoints):
    use_settings(attn_implementation="auto")
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    assert registry.sdpa_checkable(str(checkpoints["bert"])) is True
    assert registry.sdpa_checkable(str(checkpoints["albert"])) is False  # no known output projection
    assert registry.sdpa_checkable(str(checkpoints["gemma2"])) is False  # no sdpa kernel in the library
    assert registry.attn_implementation("explore", str(checkpoints["bert"]), cuda) == "sdpa"
    assert registry.attn_implementation("explore", str(checkpoints["albert"]), cuda) == "eager"
    assert registry.attn_implementation("generate", str(checkpoints["llama"]), cuda) == "eager"
    assert registry.attn_implementation("explore", str(checkpoints["bert"]), torch.device("cpu")) == "eager"


def test_the_launch_flag_reaches_the_tabs(monkeypatch, checkpoints):
    """What the tabs load while the app serves (app.launch, stubbed here, runs inside the command)."""
    import attn_demos.ui.app as app

    folder = str(checkpoints["bert"])
    served = []

    def serve(*args, **kwargs):
        served.append((registry.get_model("explore", folder).attn_implementation, explore(TEXT, source=folder)))

    monkeypatch.setattr(app, "build", lambda: None)
    monkeypatch.setattr(app, "launch", serve)
    assert cli.main(["launch", "--device", "cpu", "--attn-implementation", "sdpa"]) == cli.EXIT_OK
    assert cli.main(["launch", "--device", "cpu", "--attn-implementation", "eager"]) == cli.EXIT_OK
    (sdpa, sdpa_result), (eager, eager_result) = served
    assert sdpa == "sdpa" and OUTPUT_BADGE in sdpa_result.view(0, 0).check_badge
    assert eager == "eager" and "max |Δ|" in eager_result.view(0, 0).check_badge


def test_a_bad_implementation_in_the_environment_stops_launch_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ATTN_DEMOS_ATTN_IMPLEMENTATION", "flash")
    assert cli.main(["launch"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert "ATTN_DEMOS_ATTN_IMPLEMENTATION must be one of auto, eager, sdpa, got 'flash'" in error
    assert error.count("\n") == 1


# ---------------------------------------------------------------- the tabs under sdpa -------------


@pytest.mark.parametrize("tab", TABS)
def test_each_tab_under_sdpa_shows_the_eager_library_weights(checkpoints, implementation, tab):
    implementation("eager")
    eager, _, library = run_tab(tab, checkpoints)
    assert eager.measure == "library"
    implementation("sdpa")
    result, view, shown = run_tab(tab, checkpoints)
    assert result.measure == "output"
    if tab.startswith("translate"):
        assert result.cross is None and result.decoder is None  # generate() on sdpa returns no weights
        assert result.target_tokens == eager.target_tokens, "precondition: the same output on both kernels"
        np.testing.assert_allclose(result.decoder_shown, eager.decoder, atol=SAME, rtol=0)
        assert result.decoder_view(1, "max").verified
    else:
        assert result.library is None  # never a library weight that was not returned
    assert shown.shape == library.shape
    np.testing.assert_allclose(shown, library, atol=SAME, rtol=0)
    assert view.verified and OUTPUT_BADGE in view.check_badge and "✓" in view.check_badge
    assert "max |Δ|" not in view.check_badge  # no library/recomputed difference was measured
    payload = view.to_payload()
    assert "recomputed_max_abs_err" not in payload and payload["output_max_relative_error"] == view.error


@pytest.mark.parametrize("implementation_name", ["eager", "sdpa"])
@pytest.mark.parametrize("family", ["marian", "t5"])
def test_a_translation_click_encodes_the_source_once(checkpoints, implementation, implementation_name, family):
    """generate() and the checked pass reuse one encoder run on either kernel."""
    from attn_demos.tasks.registry import get_model

    implementation(implementation_name)
    loaded = get_model("translate", str(checkpoints[family]))
    calls = []
    handle = loaded.model.get_encoder().register_forward_hook(lambda *_: calls.append(1))
    try:
        result, _, _ = run_tab(f"translate:{family}", checkpoints)
    finally:
        handle.remove()
    assert calls == [1]
    assert result.measure == ("output" if implementation_name == "sdpa" else "library")


@pytest.mark.parametrize("tab", TABS)
def test_a_wrong_recomputation_makes_the_sdpa_badge_report_the_mismatch(checkpoints, implementation, monkeypatch, tab):
    implementation("sdpa")
    _wrong_terms(monkeypatch, _swap_heads_0_1)  # the recomputed weights of heads 0 and 1 exchanged
    result, _, _ = run_tab(tab, checkpoints)
    view = result.cross_view(0, 0) if tab.startswith("translate") else result.view(0, 0)
    assert not view.verified
    assert "✗ MISMATCH" in view.check_badge and "✓" not in view.check_badge


def test_the_badge_of_an_sdpa_view_covers_exactly_the_heads_it_is_made_of(checkpoints, implementation):
    implementation("sdpa")
    result = explore(TEXT, source=str(checkpoints["bert"]))
    errors = result.output_errors  # (L, H)
    assert errors.shape == (result.num_layers, result.num_heads) and (errors > 0).all()  # a fused kernel is never exact
    assert result.view(1, 2).error == errors[1, 2]
    assert result.view(1, "mean").error == errors[1].max()
    assert result.view("mean", 3).error == errors[:, 3].max()
    assert result.view(0, "rollout").error == errors.max()


def test_the_neuron_view_under_sdpa_compares_with_the_verified_row(checkpoints, implementation):
    implementation("eager")
    eager = explore(TEXT, source=str(checkpoints["bert"])).neuron(1, 2, 3)
    implementation("sdpa")
    result = explore(TEXT, source=str(checkpoints["bert"]))
    terms = result.neuron(1, 2, 3)
    assert terms["checked_against_label"] == "verified weight (sdpa)" and "verified weights shown (sdpa)" in terms["check_text"]
    np.testing.assert_allclose(terms["checked_against"], result.shown[1, 2, 3], atol=0, rtol=0)
    np.testing.assert_allclose(terms["checked_against"], eager["checked_against"], atol=SAME, rtol=0)  # the library's row
    assert terms["max_abs_err"] <= SAME
    assert eager["checked_against_label"] == "library weight" and "the library's weights" in eager["check_text"]


def test_the_seq2seq_neuron_view_under_sdpa(checkpoints, implementation):
    implementation("sdpa")
    result = translate(TEXT, source=str(checkpoints["marian"]), num_beams=2, max_new_tokens=6)
    terms = result.neuron(1, 0, 0)
    assert terms["checked_against_label"] == "verified weight (sdpa)" and terms["max_abs_err"] <= SAME


def test_the_tabs_handlers_under_sdpa_say_how_they_checked(use_settings, checkpoints, implementation):
    from attn_demos.ui import explorer as explorer_tab
    from attn_demos.ui import images as images_tab

    implementation("sdpa")
    use_settings(allow_user_models=False, explore_model=str(checkpoints["bert"]), classify_image_model=str(checkpoints["vit"]))
    out = explorer_tab.explore(TEXT, 0, 1, False, "")
    assert OUTPUT_BADGE in out["badge"] and "output_max_relative_error" in out["numbers"]
    flow = explorer_tab.flow(out["state"], 0)
    assert "verified through the model's own output (sdpa)" in html.unescape(flow["flow"])
    exported = json.loads(Path(explorer_tab.export(out["state"], out["inputs"], 0, 1, False)["json"]).read_text())
    assert exported["output_max_relative_error"] <= 1e-5 and "recomputed_max_abs_err" not in exported
    neuron = explorer_tab.neuron(out["state"], 0, 1, 2)["neuron"]
    assert "verified weight (sdpa)" in neuron
    out = images_tab.classify_image(_image(), 0, "max", "")
    assert OUTPUT_BADGE in out["badge"] and "✓" in out["badge"]
