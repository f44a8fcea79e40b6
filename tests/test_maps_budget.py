"""The maps budget: a tab keeps every layer's maps of a run, so the input is cut where one copy of
them would exceed $ATTN_DEMOS_MAPS_BUDGET_MB, and the person is told why. The expected lengths
come from the models' configs (layers × heads × 4 bytes × T² ≤ budget), not from the code."""

from __future__ import annotations

import pytest
import transformers

from attn_demos import cli
from attn_demos.errors import BadInputError
from attn_demos.settings import DEFAULT_MAPS_BUDGET_MB, Settings, SettingsError
from attn_demos.tasks import registry
from attn_demos.tasks.explorer import explore
from attn_demos.tasks.generation import run_generation
from attn_demos.tasks.inputs import MAPS_BUDGET_ENV, memory_token_limit
from attn_demos.tasks.seq2seq import translate

LONG_TEXT = "the " * 2_000
FLOAT32_BYTES = 4


def longest_within(budget_mb: float, layers: int, heads: int) -> int:
    """The largest T with layers × heads × T² float32 cells within the budget, by search (not the code's isqrt)."""
    budget = int(budget_mb * 2**20)
    tokens = 1
    while layers * heads * (tokens + 1) ** 2 * FLOAT32_BYTES <= budget:
        tokens += 1
    return tokens


def test_the_explorer_cuts_a_long_input_to_the_budget_and_says_why(use_settings, minilm_path):
    config = transformers.AutoConfig.from_pretrained(minilm_path)
    layers, heads = config.num_hidden_layers, config.num_attention_heads  # 6, 12
    use_settings(maps_budget_mb=1)
    expected = longest_within(1, layers, heads)  # 60 tokens: 6·12·60²·4 B = 0.99 MiB
    result = explore(LONG_TEXT, source=str(minilm_path))
    assert len(result.tokens) == expected < config.max_position_embeddings
    assert result.library.nbytes <= 2**20 < layers * heads * (expected + 1) ** 2 * FLOAT32_BYTES
    assert result.max_abs_err <= 1e-5  # what is kept is still checked
    notice = next(n for n in result.notices if "truncated" in n)
    assert f"truncated to {expected} of 2,002 tokens" in notice and "1 MB" in notice and MAPS_BUDGET_ENV in notice
    assert "the model itself reads up to 512" in notice

    use_settings(maps_budget_mb=DEFAULT_MAPS_BUDGET_MB)  # the default budget leaves MiniLM its own limit
    assert len(explore(LONG_TEXT, source=str(minilm_path)).tokens) == 512


def test_a_decoder_only_model_counts_its_causal_layers(use_settings, checkpoints):
    config = transformers.AutoConfig.from_pretrained(checkpoints["llama"])
    use_settings(maps_budget_mb=0.01)
    expected = longest_within(0.01, config.num_hidden_layers, config.num_attention_heads)
    result = explore(LONG_TEXT, source=str(checkpoints["llama"]))
    assert len(result.tokens) == expected
    assert result.recomputed.nbytes <= 0.01 * 2**20


def test_translation_counts_the_encoder_layers(use_settings, checkpoints):
    use_settings(translate_model=str(checkpoints["marian"]))
    config = transformers.AutoConfig.from_pretrained(checkpoints["marian"])
    use_settings(maps_budget_mb=0.01)
    expected = longest_within(0.01, config.encoder_layers, config.encoder_attention_heads)
    result = translate(LONG_TEXT, num_beams=1, max_new_tokens=3)
    assert len(result.source_tokens) == expected
    assert any(f"truncated to {expected} of" in notice for notice in result.notices)


def test_text_generation_refuses_a_prompt_beyond_the_budget(use_settings, checkpoints):
    config = transformers.AutoConfig.from_pretrained(checkpoints["llama"])
    loaded = registry.get_model("generate", str(checkpoints["llama"]))
    use_settings(maps_budget_mb=0.01)
    room = longest_within(0.01, config.num_hidden_layers, config.num_attention_heads) - 4
    with pytest.raises(BadInputError, match=f"reads at most {room} before 4 new tokens"):
        run_generation(loaded, "the " * (room + 1), max_new_tokens=4, chat=False)
    assert run_generation(loaded, "the " * (room - 2), max_new_tokens=4, chat=False).generated.shape[2] >= 1


@pytest.mark.parametrize("value", ["0", "-5", "lots", "nan", "inf"])
def test_a_bad_budget_is_one_line_and_stops_launch(monkeypatch, capsys, value):
    with pytest.raises(SettingsError, match=f"{MAPS_BUDGET_ENV} must be a positive number of megabytes"):
        Settings.from_env({MAPS_BUDGET_ENV: value})
    monkeypatch.setenv(MAPS_BUDGET_ENV, value)
    assert cli.main(["launch"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert MAPS_BUDGET_ENV in error and "\n" not in error


def test_a_model_without_text_self_attention_has_no_token_limit_from_the_budget(checkpoints):
    loaded = registry.get_model("classify_image", str(checkpoints["vit"]))
    assert memory_token_limit(loaded) is None  # ViT attends over patches: the image tab sizes those itself


def test_a_budget_below_the_special_tokens_refuses_in_one_line_instead_of_claiming_a_cut(use_settings, minilm_path):
    use_settings(maps_budget_mb=0.0001)  # room for one token; [CLS] and [SEP] are two
    with pytest.raises(BadInputError, match="maps budget .* holds 1 token\\(s\\) of this model, and the text needs at least"):
        explore("the cat sat on the mat", source=str(minilm_path))
