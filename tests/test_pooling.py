"""Word pooling: pieces grouped into words per tokenizer convention, matrices pooled over the words."""

import numpy as np
import pytest

from attn_demos.core.pooling import (
    BYTE_BPE,
    SENTENCEPIECE,
    WORDPIECE,
    is_special,
    piece_scheme,
    pool_matrix,
    word_groups,
    word_labels,
)


def random_attention(rng, *shape):
    logits = rng.normal(size=shape)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def test_wordpiece_groups_continuations_and_keeps_specials_alone():
    tokens = ["[CLS]", "the", "token", "##ization", "##s", "work", "[SEP]", "[PAD]"]
    groups = word_groups(tokens)
    assert groups == [[0], [1], [2, 3, 4], [5], [6], [7]]
    assert word_labels(tokens, groups) == ["[CLS]", "the", "tokenizations", "work", "[SEP]", "[PAD]"]


def test_sentencepiece_marker_starts_a_word():
    tokens = ["▁un", "believ", "able", "▁news", "</s>", "<pad>"]
    assert piece_scheme(tokens) == SENTENCEPIECE
    groups = word_groups(tokens)
    assert groups == [[0, 1, 2], [3], [4], [5]]
    assert word_labels(tokens, groups) == ["unbelievable", "news", "</s>", "<pad>"]


def test_byte_bpe_first_word_after_special_has_no_marker():
    tokens = ["<s>", "Hello", "Ġwor", "ld", "!", "Ġyou", "</s>"]
    assert piece_scheme(tokens) == BYTE_BPE
    groups = word_groups(tokens)
    assert groups == [[0], [1], [2, 3, 4], [5], [6]]
    assert word_labels(tokens, groups) == ["<s>", "Hello", "world!", "you", "</s>"]


def test_whole_word_vocabulary_is_one_word_per_token():
    tokens = ["the", "cat", "sat", "</s>"]
    assert piece_scheme(tokens) == WORDPIECE
    assert word_groups(tokens) == [[0], [1], [2], [3]]


def test_special_token_detection():
    for token in ["[CLS]", "[SEP]", "<s>", "</s>", "<pad>", "[PAD]", "<extra_id_0>", "<|endoftext|>", "<bos>", "<end_of_turn>"]:
        assert is_special(token), token
    for token in ["<", "&", "cat", "##s", "▁<", "Ġ<", "<script>", "<b>"]:
        assert not is_special(token), token


def test_hand_example_sums_keys_and_averages_queries():
    # pieces: a b1 b2  ->  words: a, b = {b1, b2}
    matrix = np.array(
        [
            [0.5, 0.25, 0.25],
            [0.1, 0.6, 0.3],
            [0.3, 0.3, 0.4],
        ]
    )  # (Tq=3, Tk=3)
    groups = [[0], [1, 2]]
    pooled = pool_matrix(matrix, groups, groups)  # (2, 2)
    expected = np.array(
        [
            [0.5, 0.25 + 0.25],
            [(0.1 + 0.3) / 2, ((0.6 + 0.3) + (0.3 + 0.4)) / 2],
        ]
    )
    np.testing.assert_allclose(pooled, expected)


def test_rows_still_sum_to_one_with_leading_axes():
    rng = np.random.default_rng(0)
    weights = random_attention(rng, 2, 3, 7, 9)  # (L, H, Tq, Tk)
    query_groups = [[0, 1], [2], [3, 4, 5], [6]]
    key_groups = [[0], [1, 2, 3], [4], [5, 6], [7, 8]]
    pooled = pool_matrix(weights, query_groups, key_groups)
    assert pooled.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(pooled.sum(axis=-1), 1.0, atol=1e-12)


def test_identity_when_every_token_is_its_own_word():
    rng = np.random.default_rng(1)
    matrix = random_attention(rng, 5, 6).astype(np.float32)  # (Tq, Tk)
    pooled = pool_matrix(matrix, [[i] for i in range(5)], [[j] for j in range(6)])
    assert pooled.dtype == np.float32
    np.testing.assert_array_equal(pooled, matrix)


def test_groups_must_partition_the_tokens():
    matrix = np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match="each token once"):
        pool_matrix(matrix, [[0], [1]], [[0], [1], [2]])
    with pytest.raises(ValueError, match="each token once"):
        pool_matrix(matrix, [[0], [1], [2]], [[0, 1], [1, 2]])
