"""Question answering as the transformers pipeline did it: the context's own characters, the score
over the context and [CLS] only, overlapping windows for long contexts.

Answers are made predictable with "pointing" checkpoints: a copy of a real or random model whose
residual branches are zeroed (each layer's output is then the layer norm of its input, so a token's
final state is set by its own embeddings) and whose embeddings of two chosen token ids (or of two
positions) carry a spike that the QA head reads. The attention itself is untouched and still checked.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from attn_demos.tasks import qa
from attn_demos.tasks.qa import (
    DOC_STRIDE,
    LOW_CONFIDENCE,
    MAX_ANSWER_TOKENS,
    QA_MAX_WINDOWS,
    answer,
    best_span,
    encode_truncated,
    match_in_context,
)

SPIKE = 60.0  # added to one embedding dimension of the start and of the end token
READ_GAIN = 8.0  # QA head weight on that dimension
ZEROED = ("attention.out_lin", "ffn.lin2", "attention.output.dense", ".output.dense")  # residual branches


def pointing_checkpoint(source, folder, start: int, end: int, table: str = "word"):
    """Copy `source` to `folder` as a QA model whose best span starts at `start` and ends at `end`:
    token ids (table="word", each must occur once in the context) or positions (table="position")."""
    model = AutoModelForQuestionAnswering.from_pretrained(source)
    base = model.base_model
    norms = [m for m in base.modules() if isinstance(m, torch.nn.LayerNorm)]
    gains = torch.stack([norm.weight.detach() for norm in norms])  # (N, D)
    start_dim, end_dim = gains.abs().min(dim=0).values.topk(2).indices.tolist()  # dims every norm keeps
    sign = gains.sign().prod(dim=0)  # (D,) the spike's sign after every norm
    with torch.no_grad():
        for name, module in base.named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(ZEROED):
                module.weight.zero_()
                module.bias.zero_()
        embeddings = (base.get_input_embeddings() if table == "word" else base.embeddings.position_embeddings).weight
        embeddings[:, [start_dim, end_dim]] = 0.0  # (V or positions, D)
        embeddings[start, start_dim] = SPIKE
        embeddings[end, end_dim] = SPIKE
        model.qa_outputs.weight.zero_()
        model.qa_outputs.bias.zero_()
        model.qa_outputs.weight[0, start_dim] = READ_GAIN * sign[start_dim]
        model.qa_outputs.weight[1, end_dim] = READ_GAIN * sign[end_dim]
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def positions_at(tokenizer, question: str, context: str, start_char: int, end_char: int) -> tuple[int, int]:
    """Positions, in the (question, context) input, of the tokens covering context[start_char:end_char]."""
    encoding = tokenizer(question, context)
    return encoding.char_to_token(start_char, sequence_index=1), encoding.char_to_token(end_char - 1, sequence_index=1)


def ids_at(tokenizer, text: str, start_char: int, end_char: int) -> tuple[int, int]:
    """Token ids covering the first and the last character of text[start_char:end_char]."""
    encoding = tokenizer(text)
    start, end = encoding.char_to_token(start_char), encoding.char_to_token(end_char - 1)
    ids = encoding["input_ids"]
    assert ids.count(ids[start]) == 1 and ids.count(ids[end]) == 1, "the pointed tokens must be unique"
    return ids[start], ids[end]


CONTEXT = "Our state-of-the-art model from Paris costs $1,250.50, and it didn't fail."
EXPECTED = ["state-of-the-art", "$1,250.50", "didn't", "Paris"]


@pytest.fixture(scope="module")
def sources(checkpoints, minilm_path):
    return {"minilm": minilm_path, "distilbert": checkpoints["distilbert"]}


@pytest.mark.parametrize("model", ["minilm", "distilbert"])
@pytest.mark.parametrize("expected", EXPECTED)
def test_answer_is_the_contexts_own_characters(sources, tmp_path, model, expected):
    tokenizer = AutoTokenizer.from_pretrained(sources[model])
    begin = CONTEXT.index(expected)
    start, end = positions_at(tokenizer, "What is it?", CONTEXT, begin, begin + len(expected))
    folder = pointing_checkpoint(sources[model], tmp_path / model, start, end, table="position")
    result = answer("What is it?", CONTEXT, source=str(folder))
    assert result.span == (start, end)
    assert result.answer == expected
    assert result.score > 0.99  # the spike dominates both softmaxes
    assert result.view().verified and result.view(1, 2).verified
    # Control: the tokenizer's decoding of the same span is not the context's text for these answers.
    ids = tokenizer("What is it?", CONTEXT)["input_ids"][result.span[0] : result.span[1] + 1]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded != expected  # both tokenizers lowercase; WordPiece spaces out the punctuation


def test_score_is_over_the_context_and_cls_only_on_fixed_logits():
    rng = np.random.default_rng(7)
    start_logits, end_logits = rng.normal(0, 2, 20), rng.normal(0, 2, 20)  # (T,)
    context, cls_index = list(range(8, 19)), 0  # [CLS] 0, question 1–6, [SEP] 7, context 8–18, [SEP] 19
    allowed = [cls_index] + context
    p_start = np.exp(start_logits[allowed]) / np.exp(start_logits[allowed]).sum()  # over [CLS] + context
    p_end = np.exp(end_logits[allowed]) / np.exp(end_logits[allowed]).sum()
    where = {position: k for k, position in enumerate(allowed)}
    expected = max(
        (p_start[where[s]] * p_end[where[e]], s, e)
        for s in context
        for e in context
        if s <= e < s + MAX_ANSWER_TOKENS
    )
    start, end, score = best_span(torch.tensor(start_logits), torch.tensor(end_logits), context, cls_index)
    assert (start, end) == (expected[1], expected[2])
    assert score == pytest.approx(expected[0], rel=1e-12)
    # Control: a softmax over every token (the old score) is a different, smaller number.
    everywhere = np.exp(start_logits) / np.exp(start_logits).sum(), np.exp(end_logits) / np.exp(end_logits).sum()
    assert everywhere[0][start] * everywhere[1][end] < score * 0.9


def test_best_span_never_starts_or_ends_on_cls_nor_runs_backwards():
    start_logits = torch.tensor([9.0, 0, 0, 0, 5, 0, 0])  # (T,) [CLS] q [SEP] c c c [SEP]
    end_logits = torch.tensor([9.0, 0, 0, 0, 0, 0, 0])  # (T,)
    start, end, score = best_span(start_logits, end_logits, [3, 4, 5], 0)
    assert (start, end) == (4, 4)
    p_start = math.exp(5) / (math.exp(9) + math.exp(5) + 2)
    p_end = 1 / (math.exp(9) + 3)
    assert score == pytest.approx(p_start * p_end, rel=1e-12)


def test_uniform_logits_score_one_over_context_plus_cls_squared(checkpoints, tmp_path):
    folder = tmp_path / "uniform"
    shutil.copytree(checkpoints["distilbert"], folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    with torch.no_grad():
        model.qa_outputs.weight.zero_()
        model.qa_outputs.bias.zero_()
    model.save_pretrained(folder)
    result = answer("Who won the election?", "The cat slept on the warm windowsill.", source=str(folder))
    expected = 1 / (len(result.context_index) + 1) ** 2
    assert result.score == pytest.approx(expected)
    assert result.score != pytest.approx(1 / len(result.tokens) ** 2)  # the old all-token score
    assert f"Low confidence ({expected:.1%}): the answer may not be in the context." in result.notices


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_answer_past_the_model_limit_is_found_in_its_window(checkpoints, tmp_path, padding_side):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["distilbert"])
    filler = "the cat sat on the mat . " * 40  # 280 tokens: past the tiny model's 128
    target = "katze"
    context = filler + f"the {target} slept ."
    begin = context.index(target)
    start_id, end_id = ids_at(tokenizer, context, begin, begin + len(target))
    folder = pointing_checkpoint(checkpoints["distilbert"], tmp_path / "pointing", start_id, end_id)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["padding_side"] = padding_side  # the last, shorter window is padded on this side
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    assert AutoTokenizer.from_pretrained(folder).padding_side == padding_side
    result = answer("Who slept?", context, source=str(folder))
    assert result.answer == target
    assert result.windows > 2 and result.window == result.windows - 1  # only the last windows hold it
    notice = f"Context split into {result.windows} overlapping windows, all {result.windows} searched; answer from window {result.windows}."
    assert notice in result.notices
    assert len(result.tokens) <= 128
    assert result.tokens[result.span[0] : result.span[1] + 1] == tokenizer.tokenize(target)
    assert [result.tokens[i] for i in result.question_index] == tokenizer.tokenize("Who slept?")
    # The window shown is a stretch of the context's tokens, not its beginning.
    context_tokens = tokenizer.tokenize(context)
    shown = [result.tokens[i] for i in result.context_index]
    first = next(i for i in range(len(context_tokens)) if context_tokens[i : i + len(shown)] == shown)
    assert first > 0
    # Its attention is the model's own on exactly those tokens (an independent forward pass).
    model = AutoModelForQuestionAnswering.from_pretrained(folder, attn_implementation="eager").eval()
    ids = torch.tensor([tokenizer.convert_tokens_to_ids(result.tokens)])  # (1, T)
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True).attentions
    direct = torch.stack([a[0] for a in attentions]).numpy()  # (L, H, T, T)
    assert np.abs(direct - result.library).max() < 1e-6
    assert result.view().verified
    # Control: the first window does not hold the answer, so a truncating reader could not find it.
    assert target not in tokenizer.decode(tokenizer("Who slept?", context, truncation="only_second", max_length=128)[
        "input_ids"])


def _last_window_context(checkpoints, tmp_path):
    """A context of more than 16 windows (the old search's end) whose answer only the last holds,
    and a checkpoint that points at it."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["distilbert"])
    target = "katze"
    context = "the cat sat on the mat . " * 200 + f"the {target} slept ."  # ~1,600 tokens: 26 windows of 128
    begin = context.index(target)
    start_id, end_id = ids_at(tokenizer, context, begin, begin + len(target))
    return context, target, pointing_checkpoint(checkpoints["distilbert"], tmp_path / "pointing", start_id, end_id)


def test_every_window_of_a_long_context_is_searched(checkpoints, tmp_path):
    context, target, folder = _last_window_context(checkpoints, tmp_path)
    result = answer("Who slept?", context, source=str(folder))
    assert 16 < result.windows == result.windows_in_context <= QA_MAX_WINDOWS
    assert result.answer == target and result.window == result.windows - 1  # found in the last window
    count = result.windows
    assert f"Context split into {count} overlapping windows, all {count} searched; answer from window {count}." in (
        result.notices
    )
    assert not any("The context is long" in notice for notice in result.notices)
    assert result.view().verified


def test_a_context_past_the_window_limit_says_how_much_was_searched(checkpoints, tmp_path, monkeypatch):
    context, target, folder = _last_window_context(checkpoints, tmp_path)
    monkeypatch.setattr(qa, "QA_MAX_WINDOWS", 3)
    result = answer("Who slept?", context, source=str(folder))
    assert result.windows == 3 < result.windows_in_context and result.window < 3
    assert result.answer != target  # the windows that hold it were not searched
    cut = next(notice for notice in result.notices if notice.startswith("The context is long"))
    assert f"searched its first 3 of {result.windows_in_context} windows" in cut
    assert "one question searches at most 3 windows" in cut
    assert f"Answer from window {result.window + 1} of the 3 searched." in result.notices


def test_windows_overlap_by_the_stride_and_keep_the_question(checkpoints):
    result = answer("where is the cat ?", "the cat sat on the mat . " * 60, source=str(checkpoints["distilbert"]))
    assert result.windows > 1
    assert [result.tokens[i] for i in result.question_index] == ["where", "is", "the", "cat", "?"]
    assert result.view().verified
    assert DOC_STRIDE == 128 and LOW_CONFIDENCE == 0.1


def test_match_in_context_for_tokenizers_without_offsets():
    context = "Our state-of-the-art model didn't fail in Paris."
    assert match_in_context("state - of - the - art", context) == "state-of-the-art"
    assert match_in_context("didn ' t", context) == "didn't"
    assert match_in_context("paris", context) == "Paris"
    assert match_in_context("london", context) == "london"  # not in the context: the decoding itself


def test_tokenizers_without_offsets_get_one_truncated_window_with_a_notice(checkpoints):
    """MarianTokenizer is a slow (Python) tokenizer: no character offsets, no overflowing windows."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["marian"])
    assert not tokenizer.is_fast
    question, context = "where is the cat ?", "the cat sat on the mat . " * 30
    batch, sequence_ids, notices = encode_truncated(tokenizer, question, context, 40)
    question_length = len(tokenizer.tokenize(question))
    assert batch["input_ids"].shape == (1, 40) and len(sequence_ids[0]) == 40
    assert sequence_ids[0][:question_length] == [0] * question_length
    assert sequence_ids[0][question_length:-1] == [1] * (40 - question_length - 1) and sequence_ids[0][-1] is None
    full = len(tokenizer(question, context)["input_ids"])
    assert f"Context truncated to the model's limit: kept 40 of {full:,} tokens." in notices
    assert any("no character offsets" in notice for notice in notices)
