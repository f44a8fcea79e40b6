"""The "at the attention function" depth: models outside the family table, checked from the exact
q, k, v, mask, scaling, window, soft-cap and sinks their modules pass to transformers' attention
function; controls that must fail; and a fast sample of scripts/coverage_sweep.py."""

from __future__ import annotations

import coverage_sweep  # scripts/coverage_sweep.py (pytest's pythonpath has scripts/)
import pytest
import torch

from attn_demos.adapters import attention_function
from attn_demos.adapters.attention_function import AT_FUNCTION, FROM_WEIGHTS

SAMPLE = ("cohere", "gptj", "opt", "falcon", "gpt_oss", "gemma4_text", "modernbert", "umt5", "dinov2")


@pytest.mark.parametrize("model_type", SAMPLE)
def test_sweep_sample_verifies_at_the_attention_function(model_type):
    architecture = coverage_sweep.architectures({model_type})[0]  # its first head (causal LM where it has one)
    result = coverage_sweep.run_one(*architecture, seconds=120)
    assert result.outcome == "verified at the attention function", result


def test_sweep_keeps_table_families_from_weights():
    result = coverage_sweep.run_one("llama", "LlamaForCausalLM", "AutoModelForCausalLM", seconds=120)
    assert result.outcome == "verified from weights", result


@pytest.mark.parametrize("architecture", [
    ("resnet", "ResNetForImageClassification", "AutoModelForImageClassification"),
    ("mamba", "MambaForCausalLM", "AutoModelForCausalLM"),
])
def test_sweep_counts_models_without_attention_maps_apart(architecture):
    """A convolutional or state-space model returns no attention maps: not refused, not counted."""
    assert coverage_sweep.run_one(*architecture, seconds=120).outcome == "no attention"


def test_sweep_still_refuses_a_model_with_maps_but_no_attention_function():
    result = coverage_sweep.run_one("bloom", "BloomForCausalLM", "AutoModelForCausalLM", seconds=120)
    assert result.outcome == "refused" and "attention function" in result.detail


def _loaded(model_type: str, name: str, auto_class: str):
    return coverage_sweep.build(model_type, name, auto_class)


def test_a_wrong_scaling_at_the_function_does_not_match(monkeypatch):
    """Control: the core given twice the scaling the module passed must not match the library."""
    from attn_demos.adapters.compare import compare_text_model

    loaded = _loaded("cohere", "CohereForCausalLM", "AutoModelForCausalLM")
    assert loaded.depth == AT_FUNCTION
    right = attention_function.recompute
    monkeypatch.setattr(
        attention_function, "recompute", lambda q, k, v, m, scaling, kw, mod: right(q, k, v, m, 2 * scaling, kw, mod)
    )
    report = compare_text_model(loaded, coverage_sweep.TEXTS)
    assert not report.ok and report.max_abs_err > 1e-3


def test_sinks_skipped_do_not_match(monkeypatch):
    """Control: GPT-OSS without its attention sinks must not match (the sinks take a share of the softmax)."""
    from attn_demos.adapters.compare import compare_text_model

    loaded = _loaded("gpt_oss", "GptOssForCausalLM", "AutoModelForCausalLM")
    with torch.no_grad():
        for module in loaded.model.modules():
            if isinstance(getattr(module, "sinks", None), torch.Tensor):
                module.sinks.fill_(2.0)  # a sink that clearly matters
    assert compare_text_model(loaded, coverage_sweep.TEXTS).ok
    monkeypatch.setattr(attention_function, "_sinks", lambda kwargs, module: None)
    report = compare_text_model(loaded, coverage_sweep.TEXTS)
    assert not report.ok and report.max_abs_err > 1e-3


@pytest.mark.parametrize("model_type", ["granite_swa", "gpt_oss"])
def test_sinks_verify_in_either_convention_and_skipping_them_does_not_match(model_type, monkeypatch):
    """GPT-OSS returns weights that give the sink its share; GraniteSWA returns them renormalised
    without it while its output carries it (checked through the output). Either way a core that
    ignores the sinks must not match."""
    from attn_demos.adapters.compare import compare_text_model
    from attn_demos.core.torch_attention import fast_attention

    name = {"granite_swa": "GraniteSWAForCausalLM", "gpt_oss": "GptOssForCausalLM"}[model_type]
    loaded = _loaded(model_type, name, "AutoModelForCausalLM")
    with torch.no_grad():
        for module in loaded.model.modules():
            if isinstance(getattr(module, "sinks", None), torch.Tensor):
                module.sinks.fill_(2.0)  # a sink that clearly matters
    assert compare_text_model(loaded, coverage_sweep.TEXTS).ok
    monkeypatch.setattr(
        attention_function, "_with_sinks",
        lambda q, k, mask, bias, scale, sinks: fast_attention(q, k, None, mask=mask, bias=bias, scale=scale)[1],
    )
    report = compare_text_model(loaded, coverage_sweep.TEXTS)
    assert not report.ok and report.max_abs_err > 1e-3


def test_the_check_returns_the_library_result_unchanged():
    """The registered function returns what the library's own eager function returns: logits of a
    model loaded for the check equal those of the same weights on plain eager."""
    import transformers

    loaded = _loaded("opt", "OPTForCausalLM", "AutoModelForCausalLM")
    plain = transformers.AutoModelForCausalLM.from_config(loaded.config, attn_implementation="eager").eval()
    plain.load_state_dict(loaded.model.state_dict())
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(loaded.model(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_report_names_its_depth():
    from attn_demos.adapters.compare import compare_text_model

    assert compare_text_model(_loaded("opt", "OPTForCausalLM", "AutoModelForCausalLM"), ["a dog"]).to_dict()["depth"] == AT_FUNCTION
    assert compare_text_model(_loaded("llama", "LlamaForCausalLM", "AutoModelForCausalLM"), ["a dog"]).depth == FROM_WEIGHTS
