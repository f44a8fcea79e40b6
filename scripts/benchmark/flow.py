"""Attention flow of one output row: the project's (attn_demos.core.flow: scipy's maximum_flow on
its own network of capacities rounded to multiples of 2^-30) against networkx (pure Python,
extrapolated) and against scipy's C maximum_flow called plainly (Dinic on the whole stack's
network, capacities scaled by 1e9 and floored, one solve per input token), on ViT-size random maps
and on MiniLM's real attention at two lengths."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from benchmark.models import text_inputs
from benchmark.report import Metric, at_least, at_most, metric
from benchmark.sizes import Sizes
from benchmark.timing import seconds

FLOW_SECONDS_GOAL = 5.0
NETWORKX_SPEEDUP_GOAL = 50.0
SCIPY_SCALE = 1e9  # capacities are at most 1: scaled by 1e9 they fit scipy's int32


def random_maps(sizes: Sizes) -> np.ndarray:
    """(L, 12, T, T) row-stochastic maps: softmax of Gaussian scores."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(sizes.flow_layers, 12, sizes.flow_length, sizes.flow_length))  # (L, H, T, T)
    return np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)


def minilm_maps(models: dict, tokens: int) -> np.ndarray:
    """(L, H, T, T) MiniLM's attention (the embedded real weights; --quick: a tiny BERT)."""
    loaded = models["minilm"]
    with torch.no_grad():
        out = loaded.model(**text_inputs(loaded, tokens), output_attentions=True)
    return torch.stack(out.attentions, dim=1)[0].double().numpy()  # (L, H, T, T)


def scipy_flow_row(weights: np.ndarray, output: int) -> np.ndarray:
    """(T,) max flow from every input token into `output`, one scipy maximum_flow per input."""
    import scipy.sparse
    from scipy.sparse.csgraph import maximum_flow

    from attn_demos.core.aggregate import fuse_heads, with_residual

    capacities = with_residual(fuse_heads(weights))  # (L, T, T) [l, i, j]: node j of l -> node i of l+1
    layers, length, _ = capacities.shape
    senders, receivers, values = [], [], []
    for layer in range(layers):
        into = np.arange(length) if layer < layers - 1 else np.array([output])  # the top keeps one node
        i, j = np.meshgrid(into, np.arange(length), indexing="ij")  # (I, T)
        senders.append((layer * length + j).ravel())
        receivers.append(((layer + 1) * length + i).ravel())
        values.append(capacities[layer][i, j].ravel())
    nodes = (layers + 1) * length
    graph = scipy.sparse.csr_array(
        (
            np.floor(np.concatenate(values) * SCIPY_SCALE).astype(np.int32),
            (np.concatenate(senders), np.concatenate(receivers)),
        ),
        shape=(nodes, nodes),
    )
    sink = layers * length + output
    return np.array([maximum_flow(graph, j, sink).flow_value for j in range(length)]) / SCIPY_SCALE


def against_scipy(name: str, weights: np.ndarray) -> list[Metric]:
    from attn_demos.core.flow import attention_flow

    layers, heads, length, _ = weights.shape
    size = dict(tokens=length, layers=layers, heads=heads)
    start = time.perf_counter()
    ours = attention_flow(weights, 0)  # (T,)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = scipy_flow_row(weights, 0)  # (T,)
    scipy_s = time.perf_counter() - start
    difference = float(np.max(np.abs(ours - theirs)))
    return [
        metric(f"flow_row_seconds/{name}", ours_s, "s", at_most(FLOW_SECONDS_GOAL), **size),
        metric(f"flow_scipy_row_seconds/{name}", scipy_s, "s", None, **size),
        metric(
            f"flow_speedup_vs_scipy/{name}",
            scipy_s / ours_s,
            "×",
            at_least(1.0),
            max_abs_difference=difference,
            scipy_scale=SCIPY_SCALE,
            **size,
        ),
    ]


def against_networkx(weights: np.ndarray, sizes: Sizes) -> list[Metric]:
    """networkx on a few inputs, its per-input time extrapolated to all T."""
    import networkx as nx

    from attn_demos.core.aggregate import fuse_heads, with_residual
    from attn_demos.core.flow import attention_flow

    layers, heads, length, _ = weights.shape
    ours_s = seconds(lambda: attention_flow(weights, 0))
    row = attention_flow(weights, 0)  # (T,)
    capacities = with_residual(fuse_heads(weights))  # (L, T, T)
    graph = nx.DiGraph()
    build_s = seconds(
        lambda: graph.add_edges_from(
            ((layer, j), (layer + 1, i), {"capacity": float(capacities[layer, i, j])})
            for layer in range(layers)
            for i in range(length)
            for j in range(length)
        )
    )
    sources = np.linspace(0, length - 1, sizes.flow_reference_sources).round().astype(int)
    per_source, reference = [], []
    for j in sources:
        start = time.perf_counter()
        reference.append(nx.maximum_flow_value(graph, (0, int(j)), (layers, 0)))
        per_source.append(time.perf_counter() - start)
    reference_s = build_s + statistics.median(per_source) * length
    note = (
        f"networkx ran on {len(sources)} of {length} sources; its time is graph building plus the median "
        f"per-source time times {length}"
    )
    return [
        metric(
            "flow_speedup_vs_networkx",
            reference_s / ours_s,
            "×",
            at_least(NETWORKX_SPEEDUP_GOAL),
            reference_seconds_extrapolated=reference_s,
            reference_sources=len(sources),
            max_abs_difference=float(np.max(np.abs(np.array(reference) - row[sources]))),
            note=note,
            tokens=length,
            layers=layers,
            heads=heads,
        )
    ]


def attention_flow(models: dict, sizes: Sizes) -> list[Metric]:
    vit_size = random_maps(sizes)
    rows = against_scipy("random_vit_size", vit_size)
    rows += against_scipy("minilm_real", minilm_maps(models, sizes.flow_real_tokens))
    rows += against_scipy("minilm_real_long", minilm_maps(models, sizes.flow_real_long_tokens))
    rows += against_networkx(vit_size, sizes)
    return rows
