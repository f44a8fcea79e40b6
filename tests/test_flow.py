"""Attention flow against a plain networkx max-flow on the same layered graph, plus hand cases.

From three layers on, the flows come from integer capacities (multiples of 1/flow.SCALE): they may
differ from networkx's float64 ones by up to flow.rounding_bound, plus float64 rounding of
networkx's own sums (ATOL)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from attn_demos.core.flow import attention_flow, rounding_bound

ATOL = 1e-12  # float64 rounding of networkx's sums of a few dozen capacities


def random_attention(rng, layers, heads, length, sharpness=1.0, causal=False):
    """(L, H, T, T) row-stochastic maps: softmax of Gaussian scores (optionally causal)."""
    scores = rng.normal(size=(layers, heads, length, length)) * sharpness
    if causal:
        scores = np.where(np.tril(np.ones((length, length), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def capacities_by_hand(weights, fusion="mean"):
    """Head-fused attention + identity, rows renormalised — written out again for the reference."""
    fused = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](weights, axis=1)  # (L, T, T)
    with_self = fused + np.eye(fused.shape[-1])
    return with_self / with_self.sum(axis=-1, keepdims=True)


def networkx_flow(capacities, output, inputs=None):
    """Max flow from input node (0, j) to output node (L, output), one networkx call per input."""
    layers, length, _ = capacities.shape
    graph = nx.DiGraph()
    for layer in range(layers):
        for i in range(length):
            for j in range(length):
                graph.add_edge((layer, j), (layer + 1, i), capacity=float(capacities[layer, i, j]))
    inputs = range(length) if inputs is None else inputs
    return np.array([nx.maximum_flow_value(graph, (0, j), (layers, output)) for j in inputs])


def assert_matches(actual, expected, weights):
    layers, _, length, _ = np.shape(weights)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rounding_bound(length, layers) + ATOL)


@pytest.mark.parametrize("seed", range(12))
def test_matches_networkx_on_small_random_graphs(seed):
    rng = np.random.default_rng(seed)
    layers, length = int(rng.integers(1, 5)), int(rng.integers(3, 9))
    weights = random_attention(rng, layers, heads=3, length=length, sharpness=[1.0, 3.0, 6.0][seed % 3])
    capacities = capacities_by_hand(weights)
    output = int(rng.integers(length))
    expected = networkx_flow(capacities, output)
    assert_matches(attention_flow(weights, output), expected, weights)


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_every_row_matches_networkx(layers):
    rng = np.random.default_rng(100 + layers)
    weights = random_attention(rng, layers, heads=2, length=5, sharpness=4.0)
    capacities = capacities_by_hand(weights)
    expected = np.stack([networkx_flow(capacities, i) for i in range(5)])
    assert_matches(attention_flow(weights), expected, weights)


@pytest.mark.parametrize("fusion", ["max", "min"])
def test_other_head_fusions_match_networkx(fusion):
    rng = np.random.default_rng(7)
    weights = random_attention(rng, 3, heads=4, length=6, sharpness=3.0)
    expected = networkx_flow(capacities_by_hand(weights, fusion), 2)
    assert_matches(attention_flow(weights, 2, fusion=fusion), expected, weights)


def test_zero_capacities_from_causal_masks_match_networkx():
    # A causal decoder stack has exact zeros above the diagonal: many nodes cannot reach the sink.
    rng = np.random.default_rng(3)
    weights = random_attention(rng, 4, heads=2, length=7, sharpness=2.0, causal=True)
    capacities = capacities_by_hand(weights)
    for output in (0, 3, 6):
        expected = networkx_flow(capacities, output)
        assert_matches(attention_flow(weights, output), expected, weights)
    assert np.all(attention_flow(weights, 3)[4:] == 0.0)  # later tokens cannot reach an earlier one


def test_larger_peaked_graph_matches_networkx():
    # Sharper attention makes bottlenecks well inside the stack, so solves reuse cuts and preflows.
    rng = np.random.default_rng(11)
    weights = random_attention(rng, 6, heads=2, length=16, sharpness=6.0)
    capacities = capacities_by_hand(weights)
    expected = networkx_flow(capacities, 0)
    assert_matches(attention_flow(weights, 0), expected, weights)


def test_one_layer_flow_is_the_edge_capacity():
    # One layer: the only path from input j to output i is the edge itself.
    attention = np.array([[[[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [0.0, 1.0, 0.0]]]])  # (1, 1, 3, 3)
    # Â = (A + I) / 2 since every row of A sums to 1.
    expected = np.array([[0.75, 0.25, 0.0], [0.1, 0.6, 0.3], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(attention_flow(attention), expected)
    np.testing.assert_allclose(attention_flow(attention, query_index=1), expected[1])


def test_two_layers_take_the_smaller_edge_on_each_path():
    # Two layers: paths j -> k -> i share no edge, so each carries min(Â_0[k, j], Â_1[i, k]).
    first = np.array([[0.0, 1.0], [1.0, 0.0]])  # Â_0 = [[0.5, 0.5], [0.5, 0.5]]
    second = np.array([[1.0, 0.0], [1.0, 0.0]])  # Â_1 = [[1, 0], [0.5, 0.5]]
    attention = np.stack([first, second])[:, None]  # (2, 1, 2, 2)
    # Into output 1: from input 0, via k=0 min(0.5, 0.5) + via k=1 min(0.5, 0.5) = 1.0, and the same from input 1.
    np.testing.assert_allclose(attention_flow(attention, 1), [1.0, 1.0])
    # Into output 0: only k=0 feeds it (capacity 1), and each input reaches k=0 with 0.5.
    np.testing.assert_allclose(attention_flow(attention, 0), [0.5, 0.5])


def test_tokens_that_only_attend_to_themselves_keep_their_own_flow():
    # A = I in every layer: each token's chain is cut off from the others.
    attention = np.broadcast_to(np.eye(4), (5, 2, 4, 4))
    np.testing.assert_allclose(attention_flow(attention), np.eye(4))


def test_flow_never_exceeds_what_the_ends_can_carry():
    rng = np.random.default_rng(5)
    weights = random_attention(rng, 5, heads=2, length=10, sharpness=3.0)
    capacities = capacities_by_hand(weights)
    flow = attention_flow(weights)  # (T, T)
    out_of_inputs = capacities[0].sum(axis=0)  # (T,) all arcs leaving input j
    slack = rounding_bound(10, 5) + ATOL
    assert np.all(flow <= out_of_inputs[None, :] + slack)
    assert np.all(flow <= 1.0 + slack)  # each output node's arcs in sum to 1 (rows are renormalised)
    assert np.all(flow >= 0.0)


def test_negative_query_index_counts_from_the_end():
    rng = np.random.default_rng(2)
    weights = random_attention(rng, 3, heads=2, length=5)
    np.testing.assert_allclose(attention_flow(weights, -1), attention_flow(weights, 4))


def test_bad_shapes_and_indices_are_refused():
    with pytest.raises(ValueError, match="shape"):
        attention_flow(np.ones((2, 3, 3)) / 3)
    with pytest.raises(ValueError, match="shape"):
        attention_flow(np.ones((1, 1, 2, 3)) / 3)
    with pytest.raises(IndexError):
        attention_flow(np.ones((1, 1, 3, 3)) / 3, query_index=3)
    with pytest.raises(ValueError, match="fusion"):
        attention_flow(np.ones((1, 1, 3, 3)) / 3, fusion="median")


def test_flow_reports_progress_and_can_be_cancelled():
    from attn_demos.core.flow import FlowCancelled

    rng = np.random.default_rng(3)
    weights = rng.random((4, 2, 5, 5))
    weights /= weights.sum(-1, keepdims=True)  # (L, H, T, T) row-stochastic
    seen = []
    flows = attention_flow(weights, 2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]
    np.testing.assert_array_equal(flows, attention_flow(weights, 2))  # progress changes nothing
    rows = []
    attention_flow(weights, progress=lambda done, total: rows.append((done, total)))
    assert rows == [(i, 25) for i in range(1, 26)]
    calls = []
    with pytest.raises(FlowCancelled, match="after 3 of 5"):
        attention_flow(weights, 2, cancelled=lambda: len(calls) >= 3 or calls.append(1))
