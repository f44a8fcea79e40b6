"""The text-generation task and the Explorer on decoder-only models (tiny random checkpoints)."""

from __future__ import annotations

import numpy as np
import pytest
import transformers

from attn_demos.errors import BadInputError
from attn_demos.tasks import registry
from attn_demos.tasks.explorer import explore
from attn_demos.tasks.generation import MAX_NEW_TOKENS_CAP, generate

PROMPT = "the cat sat on the mat"


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
def test_generate_returns_each_tokens_attention_with_a_live_check(checkpoints, family, num_beams):
    result = generate(PROMPT, source=str(checkpoints[family]), num_beams=num_beams, max_new_tokens=6)
    steps = len(result.generated_tokens)
    assert 1 <= steps <= 6 and result.num_beams == num_beams
    prompt_length = len(result.prompt_tokens)
    assert result.generated.shape[2:] == (steps, len(result.key_tokens))
    assert len(result.key_tokens) >= prompt_length + steps - 1
    assert result.max_abs_err <= 1e-5
    rows = result.generated.sum(-1)  # (L, H, N): every step's row is a distribution
    np.testing.assert_allclose(rows, 1.0, atol=1e-5)
    for g in range(steps):  # token g attends to the prompt and generated tokens before it only
        assert (result.generated[:, :, g, prompt_length + g :] == 0).all()
    view = result.view(layer=0, head="mean")
    assert view.matrix.shape == (steps, len(result.key_tokens))
    assert result.token_scores(0).shape == (len(result.key_tokens),)
    assert any("random weights" in n for n in result.notices)


def test_generation_limits_and_wrong_models_are_refused(checkpoints):
    with pytest.raises(BadInputError, match="new tokens"):
        generate(PROMPT, source=str(checkpoints["llama"]), max_new_tokens=MAX_NEW_TOKENS_CAP + 1)
    with pytest.raises(BadInputError, match="beams"):
        generate(PROMPT, source=str(checkpoints["llama"]), num_beams=0)
    with pytest.raises(BadInputError):
        generate("   ", source=str(checkpoints["llama"]))


def test_generate_is_registered_with_its_default_model():
    assert registry.TASK_AUTO_CLASSES["generate"] == "causal_lm"
    assert registry.DEFAULT_MODELS["generate"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert registry.ENV_VARS["generate"] == "ATTN_DEMOS_GENERATE_MODEL"


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_explorer_accepts_decoder_only_models(checkpoints, family):
    result = explore(PROMPT, source=str(checkpoints[family]))
    assert result.max_abs_err <= 1e-5
    upper = np.triu(np.ones(result.library.shape[-2:], dtype=bool), 1)
    assert (result.library[..., upper] == 0).all()  # causal
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoints[family])
    assert len(result.tokens) == len(tokenizer(PROMPT)["input_ids"])  # the checkpoint's own pieces, no padding
