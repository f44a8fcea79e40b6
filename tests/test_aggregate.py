"""Head fusion and attention rollout (Abnar & Zuidema, 2020) against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from attn_demos.core.aggregate import fuse_heads, rollout, with_residual


def _random_attention(seed: int, layers: int, heads: int, length: int) -> np.ndarray:
    """(L, H, T, T) row-stochastic maps."""
    raw = np.random.default_rng(seed).random((layers, heads, length, length)) + 0.01
    return raw / raw.sum(-1, keepdims=True)


def _rollout_by_definition(weights: np.ndarray, fuse) -> np.ndarray:
    """R = Â_L … Â_1 with Â_l = rownorm(fuse(A_l) + I), one layer at a time, written out."""
    layers, _, length, _ = weights.shape
    result = np.eye(length)
    for layer in range(layers):
        a_hat = fuse(weights[layer]) + np.eye(length)  # (T, T)
        a_hat = a_hat / a_hat.sum(axis=1)[:, None]
        result = a_hat @ result  # the new layer multiplies from the left
    return result


@pytest.mark.parametrize(
    "how, manual",
    [
        ("mean", lambda w: sum(w[:, h] for h in range(w.shape[1])) / w.shape[1]),
        ("max", lambda w: np.maximum.reduce([w[:, h] for h in range(w.shape[1])])),
        ("min", lambda w: np.minimum.reduce([w[:, h] for h in range(w.shape[1])])),
    ],
)
def test_fuse_heads_against_manual(how, manual):
    weights = _random_attention(0, layers=2, heads=3, length=4)  # (L, H, T, T)
    fused = fuse_heads(weights, how)
    assert fused.shape == (2, 4, 4)
    np.testing.assert_allclose(fused, manual(weights), rtol=0, atol=1e-15)


def test_fuse_heads_small_numbers():
    weights = np.array([[[0.2, 0.8]], [[0.6, 0.4]]])  # (H=2, Tq=1, Tk=2)
    np.testing.assert_allclose(fuse_heads(weights, "mean"), [[0.4, 0.6]], atol=1e-15)
    np.testing.assert_allclose(fuse_heads(weights, "max"), [[0.6, 0.8]], atol=1e-15)
    np.testing.assert_allclose(fuse_heads(weights, "min"), [[0.2, 0.4]], atol=1e-15)


def test_fuse_heads_rejects_unknown_fusion():
    with pytest.raises(ValueError, match="median"):
        fuse_heads(np.ones((1, 2, 2, 2)), "median")


def test_rollout_hand_computed_two_by_two():
    # One head, two layers.
    # A₁ = [[1, 0], [.5, .5]] → +I = [[2, 0], [.5, 1.5]] → rows /2: Â₁ = [[1, 0], [.25, .75]]
    # A₂ = [[0, 1], [1, 0]]   → +I = [[1, 1], [1, 1]]    → rows /2: Â₂ = [[.5, .5], [.5, .5]]
    # R = Â₂·Â₁ = [[.5 + .125, .375], same] = [[.625, .375], [.625, .375]]
    weights = np.array([[[[1.0, 0.0], [0.5, 0.5]]], [[[0.0, 1.0], [1.0, 0.0]]]])  # (L=2, H=1, 2, 2)
    np.testing.assert_allclose(rollout(weights), [[0.625, 0.375], [0.625, 0.375]], rtol=0, atol=1e-15)
    # The order matters: Â₁·Â₂ would be all 0.5.
    np.testing.assert_allclose(rollout(weights[::-1]), [[0.5, 0.5], [0.5, 0.5]], rtol=0, atol=1e-15)


def test_rollout_without_residual_is_the_plain_product():
    weights = np.array([[[[1.0, 0.0], [0.5, 0.5]]], [[[0.0, 1.0], [1.0, 0.0]]]])  # (L=2, H=1, 2, 2)
    # A₂·A₁ = [[.5, .5], [1, 0]]
    np.testing.assert_allclose(rollout(weights, residual=False), [[0.5, 0.5], [1.0, 0.0]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("how", ["mean", "max", "min"])
def test_rollout_against_the_definition(layers, how):
    weights = _random_attention(layers, layers=layers, heads=2, length=3)  # (L, H, T, T)
    expected = _rollout_by_definition(weights, lambda w: getattr(np, how)(w, axis=0))
    result = rollout(weights, fusion=how)
    assert result.shape == (3, 3)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(result.sum(-1), 1.0, rtol=0, atol=1e-14)


def test_rollout_three_layers_multiplies_in_order():
    # With head fusion trivial (one head), R must be Â₃·Â₂·Â₁ and not any other order.
    weights = _random_attention(7, layers=3, heads=1, length=3)
    hats = with_residual(weights[:, 0])  # (L, T, T)
    np.testing.assert_allclose(rollout(weights), hats[2] @ hats[1] @ hats[0], rtol=0, atol=1e-14)
    assert np.abs(rollout(weights) - hats[0] @ hats[1] @ hats[2]).max() > 1e-3


def test_with_residual_adds_identity_and_normalises():
    maps = np.array([[[0.0, 1.0], [0.0, 0.0]]])  # (L=1, T=2, T); row 1 is a padded (all-zero) query
    # Row 0: [1, 1]/2; row 1: [0, 1]/1 — the padded query keeps only itself.
    np.testing.assert_allclose(with_residual(maps), [[[0.5, 0.5], [0.0, 1.0]]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape", [(2, 3, 3), (2, 1, 3, 4), (1, 2, 1, 3, 3)])
def test_rollout_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="L, H, T, T"):
        rollout(np.ones(shape))


def test_rows_of_the_rollout_are_the_rollouts_rows():
    """rollout_rows (vectors times each layer's map) gives the rows of rollout (the whole product)."""
    from attn_demos.core.aggregate import rollout_rows

    rng = np.random.default_rng(5)
    weights = rng.random((4, 3, 7, 7))
    weights /= weights.sum(axis=-1, keepdims=True)  # (L, H, T, T) row-stochastic
    for fusion in ("mean", "max"):
        for residual in (True, False):
            whole = rollout(weights, fusion, residual)  # (T, T)
            np.testing.assert_allclose(rollout_rows(weights, 2, fusion, residual), whole[2], rtol=0, atol=1e-12)
            np.testing.assert_allclose(rollout_rows(weights, [0, 5], fusion, residual), whole[[0, 5]], rtol=0, atol=1e-12)
    assert not np.allclose(rollout_rows(weights, 2), rollout(weights)[3])  # control: another row differs
