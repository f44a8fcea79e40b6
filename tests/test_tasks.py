"""Task functions on tiny random checkpoints and the real MiniLM, loaded through the same
override path users have (a folder passed as the model source)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from transformers import AutoTokenizer

from attn_demos.core.pooling import word_groups, word_labels
from attn_demos.errors import BadInputError, ModelLoadError
from attn_demos.tasks.explorer import explore
from attn_demos.tasks.images import classify_image
from attn_demos.tasks.qa import answer
from attn_demos.tasks.seq2seq import summarize, translate

TOL = 1e-5


def test_explorer_on_real_minilm_matches_tokenizer_and_recomputation(minilm_path):
    from transformers import AutoTokenizer

    text = "The animal didn't cross the street because it was too tired."
    result = explore(text, source=str(minilm_path))
    expected_tokens = AutoTokenizer.from_pretrained(minilm_path).tokenize(text)
    assert result.tokens == ["[CLS]", *expected_tokens, "[SEP]"]
    n = len(result.tokens)
    assert result.library.shape == (6, 12, n, n)
    np.testing.assert_allclose(result.library.sum(-1), 1.0, atol=1e-5)
    assert result.max_abs_err <= TOL
    for layer, head in [(0, 0), (5, 11), ("mean", "mean"), (2, "max"), (3, "min"), (0, "rollout")]:
        view = result.view(layer, head)
        assert view.matrix.shape == (n, n)
        assert view.verified and "✓" in view.check_badge


def test_explorer_rollout_rows_sum_to_one(minilm_path):
    view = explore("Attention is all you need.", source=str(minilm_path)).view(head="rollout")
    np.testing.assert_allclose(view.matrix.sum(-1), 1.0, atol=1e-6)


def test_explorer_word_pooling_gives_one_label_per_word(minilm_path):
    result = explore("Tokenization splits unbelievable words.", source=str(minilm_path))
    assert any(t.startswith("##") for t in result.tokens), "the sentence must contain word pieces"
    view = result.view(0, "mean", words=True)
    assert view.query_labels == view.key_labels
    assert "unbelievable" in view.query_labels and "tokenization" in view.query_labels
    assert view.matrix.shape == (len(view.query_labels), len(view.key_labels))
    np.testing.assert_allclose(view.matrix.sum(-1), 1.0, atol=1e-5)  # keys summed within a word


def test_explorer_truncates_long_text_with_a_notice(checkpoints):
    result = explore("the cat sat " * 400, source=str(checkpoints["bert"]))
    assert len(result.tokens) == 128  # the tiny tokenizer's model_max_length
    assert any("truncated" in n and "128" in n for n in result.notices)


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01"])
def test_explorer_refuses_empty_text(checkpoints, text):
    with pytest.raises(BadInputError):
        explore(text, source=str(checkpoints["bert"]))


@pytest.mark.parametrize("beams", [1, 3])
def test_translation_alignment_along_the_winning_beam(checkpoints, beams):
    result = translate("The cat sat on the mat.", source=str(checkpoints["marian"]), num_beams=beams, max_new_tokens=8)
    steps, sources = len(result.target_tokens), len(result.source_tokens)
    assert result.source_tokens[-1] == "</s>"
    assert result.cross.shape == (2, 4, steps, sources)
    assert result.decoder.shape == (2, 4, steps, steps)
    np.testing.assert_allclose(result.cross.sum(-1), 1.0, atol=1e-5)  # every real step attends somewhere
    np.testing.assert_allclose(result.decoder.sum(-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(result.decoder, k=1), 0.0)  # a step never sees the future
    view = result.cross_view("mean", "mean")
    assert view.verified, view.check_badge
    assert result.decoder_view(1, 2).verified
    # Coverage: each output row sums to 1, so the source tokens receive T in total.
    assert result.coverage().sum() == pytest.approx(steps, rel=1e-5)
    assert result.source_scores(0).shape == (sources,)
    with pytest.raises(BadInputError):
        result.source_scores(steps)


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_summarization_on_bart_and_t5(checkpoints, family):
    article = "Heavy rain caused the river to rise by almost two metres overnight, flooding several fields."
    result = summarize(article, source=str(checkpoints[family]), num_beams=2, max_new_tokens=10)
    assert 1 <= len(result.target_tokens) <= 10
    assert result.cross.shape[2:] == (len(result.target_tokens), len(result.source_tokens))
    assert result.cross_view(0, 0).verified and result.cross_view("mean", "max").verified


def test_translation_rejects_an_encoder_only_model(checkpoints, caplog):
    """A model the request named: the visitor gets the one sentence, the log says why."""
    from attn_demos.tasks.registry import NAMED_MODEL_REFUSED

    with caplog.at_level("WARNING", logger="attn_demos.tasks.registry"), pytest.raises(ModelLoadError) as caught:
        translate("hello", source=str(checkpoints["bert"]))
    assert str(caught.value) == NAMED_MODEL_REFUSED and "bert model, not an encoder-decoder" in caplog.text


def test_question_answering_span_and_context_scores(checkpoints):
    question = "Where did the cat sleep?"
    context = "The cat slept on the warm windowsill all afternoon while the dog waited by the door."
    result = answer(question, context, source=str(checkpoints["distilbert"]))
    start, end = result.span
    assert start in result.context_index and end in result.context_index and start <= end
    assert result.answer  # a tiny model still picks some span of the context
    assert result.answer in context  # the context's own characters, case kept
    question_tokens = [result.tokens[i] for i in result.question_index]
    assert question_tokens == AutoTokenizer.from_pretrained(checkpoints["distilbert"]).tokenize(question)
    assert word_labels(question_tokens, word_groups(question_tokens)) == ["where", "did", "the", "cat", "sleep", "?"]
    tokens, scores = result.context_scores("answer", 0, "mean")
    assert len(tokens) == len(scores) == len(result.context_index)
    assert 0 < scores.sum() <= 1 + 1e-6  # part of each answer row's mass lands on the context
    _, from_question = result.context_scores("question", "mean", "rollout")
    assert from_question.shape == scores.shape
    assert result.view(1, 3).verified
    low = any("Low confidence" in n for n in result.notices)
    assert low == (result.score < 0.1)


def test_question_answering_refuses_empty_question(checkpoints):
    with pytest.raises(BadInputError, match="question"):
        answer("  ", "some context", source=str(checkpoints["distilbert"]))


def _png_bytes(mode: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else None).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_image_patches_on_the_models_own_grid(checkpoints, mode):
    image = Image.open(io.BytesIO(_png_bytes(mode, (64, 48))))
    result = classify_image(image, source=str(checkpoints["vit"]))
    assert result.grid == (4, 4)  # image_size 32 / patch_size 8 in the tiny config
    assert result.library.shape == (2, 4, 17, 17)
    patch_map = result.cls_patch_map(0, 0)
    assert patch_map.shape == (4, 4)
    # [CLS]'s row sums to 1: the patches get everything but what [CLS] keeps for itself.
    assert patch_map.sum() + result.library[0, 0, 0, 0] == pytest.approx(1.0, abs=1e-5)
    probabilities = [p for _, p in result.labels]
    assert len(result.labels) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert {name for name, _ in result.labels} == {"cat", "dog", "bird", "car", "tree"}
    assert result.check_error(0, 0) <= TOL and result.check_error(head="rollout") <= TOL


def test_image_refuses_corrupt_and_tiny_images(checkpoints):
    with pytest.raises(BadInputError, match="not a readable image"):
        classify_image(io.BytesIO(b"definitely not an image"), source=str(checkpoints["vit"]))
    with pytest.raises(BadInputError, match="too small"):
        classify_image(Image.new("RGB", (1, 1)), source=str(checkpoints["vit"]))


def test_huge_image_is_downscaled_with_a_notice(checkpoints):
    result = classify_image(Image.new("RGB", (4000, 1000), "white"), source=str(checkpoints["vit"]))
    assert max(result.image.size) == 1024
    assert any("downscaled" in n for n in result.notices)
    assert any("wide" in n for n in result.notices)


def _two_layer_flow(library: np.ndarray, output: int) -> np.ndarray:
    """Max-flow in a 2-layer network by hand: the paths j → k → output share no edge, so the flow
    from j is Σ_k min(Â_0[k, j], Â_1[output, k]), Â_l = head-mean + identity, rows renormalised."""
    fused = library.mean(axis=1) + np.eye(library.shape[-1])  # (2, T, T)
    fused /= fused.sum(-1, keepdims=True)
    return np.minimum(fused[0], fused[1][output][:, None]).sum(axis=0)  # (T,)


def test_explorer_flow_matches_the_two_layer_formula(checkpoints):
    result = explore("the cat sat on the mat", source=str(checkpoints["bert"]))
    assert result.num_layers == 2
    for output in (0, 3):
        np.testing.assert_allclose(result.flow_scores(output), _two_layer_flow(result.library, output), atol=1e-9)
    with pytest.raises(BadInputError):
        result.flow_scores(len(result.tokens))


def test_image_flow_map_is_the_cls_flow_on_the_patch_grid(checkpoints):
    result = classify_image(Image.new("RGB", (40, 40), "blue"), source=str(checkpoints["vit"]))
    expected = _two_layer_flow(result.library, 0)[1:].reshape(result.grid)
    np.testing.assert_allclose(result.flow_map(), expected, atol=1e-9)


def test_a_tab_whose_model_cannot_load_tells_the_log_how_to_point_it_elsewhere(use_settings, caplog):
    """Visitors get one sentence without server paths; the operator's hint goes to the log."""
    from attn_demos.tasks.registry import UNAVAILABLE

    use_settings(translate_model="/no/such/folder")
    with caplog.at_level("WARNING", logger="attn_demos.tasks.registry"), pytest.raises(ModelLoadError) as caught:
        translate("hello")
    assert str(caught.value) == UNAVAILABLE
    assert "no such folder" in caplog.text
    assert "ATTN_DEMOS_TRANSLATE_MODEL=" in caplog.text and "--translate-model" in caplog.text


def test_ids_beyond_the_tokenizer_get_a_label_not_none(checkpoints):
    """A model may have more embedding rows than its tokenizer has tokens (T5: 32128 vs 32100)."""
    from transformers import AutoTokenizer

    from attn_demos.adapters.extract import token_labels

    tokenizer = AutoTokenizer.from_pretrained(checkpoints["t5"])  # (MarianTokenizer raises on such ids)
    beyond = len(tokenizer) + 5
    assert token_labels(tokenizer, [0, beyond]) == [tokenizer.convert_ids_to_tokens(0), f"<id {beyond}>"]


def test_a_view_says_what_it_computed_for_layer_mean_and_one_head():
    from attn_demos.tasks.views import describe, select

    weights = np.random.default_rng(4).dirichlet(np.ones(3), size=(2, 3, 3))  # (L, H, T, T)
    np.testing.assert_allclose(select(weights, "mean", 2), weights[:, 2].mean(axis=0))  # head 2 of each layer, averaged
    assert describe("mean", 2) == "head 2, mean over layers"
    assert describe(1, "mean") == "layer 1, mean of heads" and describe("mean", "max") == "mean of layers, max of heads"


def test_the_sharpest_head_leaves_special_tokens_out():
    from attn_demos.tasks.views import sharpest_head

    weights = np.full((2, 3, 4, 4), 0.25)  # (L, H, T, T): every head uniform ...
    weights[0, 1, 2] = [0.0, 0.0, 0.0, 1.0]  # ... but layer 0 head 1 puts row 2 on [SEP] (a sink)
    weights[1, 2, 2] = [0.0, 0.7, 0.3, 0.0]  # ... and layer 1 head 2 on two words
    special = [True, False, False, True]  # [CLS] w w [SEP]
    assert sharpest_head(weights, 2, special) == (1, 2)
    assert sharpest_head(weights, 2, special, layer=0) == (0, 0)  # in layer 0 no head beats uniform; the first wins
    assert sharpest_head(weights, 2, [False] * 4, layer=0) == (0, 1)  # control: counting [SEP], the sink wins
