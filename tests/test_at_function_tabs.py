"""Models checked at the attention function in the Explorer, Text generation and `view`: each shows
its maps with a badge that names the depth, checked live (a control that breaks the check shows a
mismatch); and a decoder alone that takes no position_ids (BartForCausalLM) generates."""

from __future__ import annotations

from pathlib import Path

import coverage_sweep  # scripts/coverage_sweep.py (pytest's pythonpath has scripts/)
import pytest
import torch

from attn_demos.adapters import attention_function
from attn_demos.adapters.attention_function import AT_FUNCTION, FROM_WEIGHTS
from attn_demos.adapters.loading import load_model
from attn_demos.adapters.precision import tolerance_for
from attn_demos.adapters.random_checkpoints import build_checkpoint
from attn_demos.tasks.explorer import explore
from attn_demos.tasks.generation import run_generation
from attn_demos.tasks.long_view import view_long_input
from attn_demos.tasks.views import check_badge

TEXT = "the cat sat on the mat and the dog"
TOLERANCE = tolerance_for("float32")
# a rotary type the core does not implement: this Llama is checked at the attention function
PROPORTIONAL = {"rope_type": "proportional", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}


@pytest.fixture(scope="module")
def decoder_folder(tmp_path_factory) -> Path:
    return build_checkpoint("llama", tmp_path_factory.mktemp("at-function") / "llama", rope_parameters=PROPORTIONAL)


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory) -> Path:
    """ModernBERT (not in the family table; calls the attention function), saved with its tokenizer."""
    loaded = coverage_sweep.build("modernbert", "ModernBertForMaskedLM", "AutoModelForMaskedLM")
    folder = tmp_path_factory.mktemp("at-function") / "modernbert"
    loaded.model.save_pretrained(folder)
    loaded.preprocessor.save_pretrained(folder)
    return folder


def test_the_badge_names_the_depth():
    assert check_badge(1e-7) == "recomputed from weights: max |Δ| 1.0e-07 ✓"
    assert check_badge(1e-7, depth=AT_FUNCTION) == "checked at the attention function: max |Δ| 1.0e-07 ✓"
    assert check_badge(1e-2, depth=AT_FUNCTION).endswith("✗ MISMATCH")
    assert check_badge(1e-7, "output", AT_FUNCTION).startswith("checked at the attention function, verified through")


@pytest.mark.parametrize("which", ["decoder", "encoder"])
def test_explorer_shows_a_model_checked_at_the_attention_function(decoder_folder, encoder_folder, which):
    folder = decoder_folder if which == "decoder" else encoder_folder
    result = explore(TEXT, source=str(folder))
    layers, heads = result.library.shape[:2]
    assert result.depth == AT_FUNCTION and result.kind == which
    assert result.recomputed.shape == result.library.shape and (layers, heads) == (2, 4)
    assert float(result.library.std()) > 0.05, "attention far from uniform, so the check means something"
    for layer, head in ((0, 0), (1, 3), ("mean", "mean"), (0, "rollout")):
        view = result.view(layer, head)
        assert view.check_badge.startswith("checked at the attention function: max |Δ| ") and view.check_badge.endswith("✓")
        assert view.error <= TOLERANCE and view.check_fields()["depth"] == AT_FUNCTION
    assert result.max_abs_err <= TOLERANCE


def test_explorer_at_the_attention_function_is_checked_live(decoder_folder, monkeypatch):
    """Control: a check that doubles the scaling the module passed shows a mismatch in the badge."""
    right = attention_function.recompute
    monkeypatch.setattr(
        attention_function, "recompute", lambda q, k, v, m, scaling, kw, mod: right(q, k, v, m, 2 * scaling, kw, mod)
    )
    view = explore(TEXT, source=str(decoder_folder)).view(1, 0)
    assert view.error > 1e-3 and view.check_badge.endswith("✗ MISMATCH")


def test_text_generation_takes_a_model_checked_at_the_attention_function(decoder_folder):
    result = run_generation(load_model(str(decoder_folder)), "the cat sat", num_beams=2, max_new_tokens=4)
    assert result.depth == AT_FUNCTION and result.generated.shape[2] >= 1
    assert result.max_abs_err <= TOLERANCE
    assert result.view(0, 1).check_badge.startswith("checked at the attention function: max |Δ| ")


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_view_takes_a_model_checked_at_the_attention_function(decoder_folder, implementation):
    view = view_long_input(str(decoder_folder), text=TEXT, layers=(0, -1), heads=(2,), rollout=True,
                           attn_implementation=implementation)
    tokens = len(view.tokens)
    assert view.ok and view.run["depth"] == AT_FUNCTION and view.run["attn_implementation"] == implementation
    assert view.errors.shape == (2, 4) and sorted(view.layers) == [0, 1] and view.layers[1].shape == (4, tokens, tokens)
    assert float(view.errors.max()) <= view.tolerance
    torch.testing.assert_close(torch.from_numpy(view.rollout).sum(-1), torch.ones(tokens))


def test_view_at_the_attention_function_matches_the_explorer(decoder_folder):
    """The layer `view` keeps is the core's recomputation the Explorer shows of the same text."""
    kept = view_long_input(str(decoder_folder), text=TEXT, layers=(1,), attn_implementation="eager").layers[1]
    shown = explore(TEXT, source=str(decoder_folder)).recomputed[1]
    assert float(abs(kept - shown).max()) <= TOLERANCE


def test_a_table_family_stays_from_weights_in_the_tabs(checkpoints):
    result = explore(TEXT, source=str(checkpoints["llama"]))
    assert result.depth == FROM_WEIGHTS and result.view(0, 0).check_badge.startswith("recomputed from weights: ")


def test_text_generation_with_a_decoder_alone_that_takes_no_positions(tmp_path):
    """BartForCausalLM's forward takes no position_ids: the tab must not pass them."""
    folder = build_checkpoint("bart", tmp_path / "bart-lm", model_class="BartForCausalLM", is_decoder=True,
                              is_encoder_decoder=False)
    result = run_generation(load_model(str(folder)), "the cat sat", max_new_tokens=4)
    assert result.generated.shape[2] >= 1 and result.max_abs_err <= TOLERANCE
