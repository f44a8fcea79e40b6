"""The core pieces modern decoders need, against numbers derived by hand: rotary embeddings,
grouped-query head sharing, sliding windows, soft-capping, RMS normalisation, left-padded positions."""

from __future__ import annotations

import math

import torch

from attn_demos.core.heads import repeat_kv_heads, rms_norm, soft_cap
from attn_demos.core.masks import positions_from_padding, sliding_window_mask
from attn_demos.core.rotary import apply_rotary, inverse_frequencies, rotary_angles, rotary_dimension
from attn_demos.core.torch_attention import attention


def test_inverse_frequencies_are_theta_to_the_minus_2i_over_d():
    torch.testing.assert_close(inverse_frequencies(4, 100.0), torch.tensor([1.0, 0.1]))
    assert rotary_dimension(8, 0.5) == 4 and rotary_dimension(64, 1.0) == 64


def test_rotary_rotates_each_channel_pair_and_passes_the_rest():
    # d = 6, rotary on 4 channels: pairs (0, 2) and (1, 3); channels 4, 5 pass unchanged.
    x = torch.tensor([1.0, 2.0, 0.0, 0.0, 7.0, 8.0]).view(1, 1, 1, 6)  # (B, H, T, d)
    angles = torch.tensor([[[math.pi / 2, math.pi]]])  # (B, T, 2)
    rotated = apply_rotary(x, angles)
    # pair 0: (1, 0) by 90° -> (0, 1); pair 1: (2, 0) by 180° -> (-2, 0)
    torch.testing.assert_close(rotated.view(6), torch.tensor([0.0, -2.0, 1.0, 0.0, 7.0, 8.0]), atol=1e-6, rtol=0)


def test_rotary_scores_depend_only_on_the_distance():
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, 8, generator=generator, dtype=torch.float64)  # (B, H, T, d) each
    frequencies = inverse_frequencies(8, 10000.0, dtype=torch.float64)

    def score(query_position, key_position):
        rq = apply_rotary(q, rotary_angles(torch.tensor([[query_position]]), frequencies))
        rk = apply_rotary(k, rotary_angles(torch.tensor([[key_position]]), frequencies))
        return float((rq * rk).sum())

    assert abs(score(5, 2) - score(13, 10)) < 1e-12
    assert abs(score(5, 2) - score(5, 3)) > 1e-3  # a different distance gives a different score
    assert abs(score(0, 0) - float((q * k).sum())) < 1e-12  # position 0 is no rotation


def test_grouped_query_heads_share_kv_heads_in_consecutive_groups():
    kv = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1)  # (B, H_kv, T, d)
    assert repeat_kv_heads(kv, 4).view(4).tolist() == [10.0, 10.0, 20.0, 20.0]


def test_sliding_window_keeps_the_most_recent_keys():
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(sliding_window_mask(4, 4, 2)[0, 0], expected)
    assert torch.equal(sliding_window_mask(1, 4, 2)[0, 0], expected[-1:])  # one cached step: the last row


def test_soft_cap_squashes_logits_into_the_cap():
    capped = soft_cap(torch.tensor([0.0, 5 * math.atanh(0.5), 1e6]), 5.0)
    torch.testing.assert_close(capped, torch.tensor([0.0, 2.5, 5.0]))


def test_soft_cap_enters_attention_before_the_softmax():
    q, k = torch.tensor([[[2.0]]]), torch.tensor([[[1.0], [0.0]]])  # scores 2·1 and 0 with scale 1
    v = torch.zeros(1, 2, 1)  # (B, Tk, d_v): only the weights are looked at
    _, weights = attention(q, k, v, scale=1.0, softcap=1.0)
    expected = torch.softmax(torch.tensor([math.tanh(2.0), 0.0]), dim=0)
    torch.testing.assert_close(weights.view(2), expected)


def test_rms_norm_divides_by_the_root_mean_square():
    x = torch.tensor([3.0, 4.0])
    rms = math.sqrt((9 + 16) / 2)
    out = rms_norm(x, torch.tensor([1.0, 2.0]), eps=0.0)
    torch.testing.assert_close(out, torch.tensor([3 / rms, 2 * 4 / rms]))


def test_positions_count_real_tokens_after_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert positions_from_padding(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
