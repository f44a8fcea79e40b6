"""The sdpa check (recomputed weights · v compared with the module's own output) on the families
added after it: decoder-only LLMs, DeiT, ELECTRA, XLM-R; and a clear refusal where it can't run."""

from __future__ import annotations

import pytest
from test_precision import _swap_heads_0_1, _wrong_terms, compare, loaded_model, verified

from attn_demos.adapters.precision import tolerance_for
from attn_demos.errors import ModelLoadError, UnsupportedModelError

SDPA_FAMILIES = ("gpt2", "llama", "qwen2", "qwen3", "mistral", "phi3", "gpt_neox", "deit", "electra", "xlm-roberta")


@pytest.mark.parametrize("family", SDPA_FAMILIES)
def test_sdpa_check_passes_on_the_new_families(checkpoints, family):
    report = compare(loaded_model(checkpoints, family, implementation="sdpa"))
    assert report.ok, (report.max_abs_err, report.kinds())
    assert 0 < report.max_abs_err <= tolerance_for("float32")  # a fused kernel is never bit-exact


@pytest.mark.parametrize("family", ("gpt2", "llama", "gpt_neox", "deit"))
def test_swapped_heads_fail_the_sdpa_check_on_the_new_families(checkpoints, monkeypatch, family):
    loaded = loaded_model(checkpoints, family, implementation="sdpa")
    _wrong_terms(monkeypatch, _swap_heads_0_1)
    for kind, errors in verified(loaded).errors.items():  # (B, L, H)
        worst = errors.amax(dim=0)  # (L, H)
        assert (worst[:, :2] > tolerance_for("float32")).all(), (kind, worst)


def test_albert_sdpa_is_refused_in_one_line(checkpoints):
    with pytest.raises(UnsupportedModelError, match="output projection"):
        compare(loaded_model(checkpoints, "albert", implementation="sdpa"))


def test_gemma2_sdpa_is_refused_by_the_library_in_one_line(checkpoints):
    with pytest.raises(ModelLoadError, match="does not support"):
        loaded_model(checkpoints, "gemma2", implementation="sdpa")
