"""Attention flow (Abnar & Zuidema, 2020): attention read as a flow network, value = max flow.

The network has L+1 layers of T nodes. Node j of layer l feeds node i of layer l+1 with capacity
Â_l[i, j], where Â_l is layer l's head-fused attention plus the identity (the residual path), rows
renormalised (`aggregate.with_residual`). flow[i, j] is the maximum flow from input node j
(layer 0) to output node i (layer L). Unlike rollout, flows into one output do not sum to 1.

How it is computed, exactly up to float rounding (pure numpy):
- L = 1: the only path is the edge: flow = Â_0[i, j].
- L = 2: the paths j -> k -> i share no edge: flow = Σ_k min(Â_0[k, j], Â_1[i, k]).
- L ≥ 3: push-relabel on the reversed network (source: output token i at the top; sink: input
  token j at the bottom). Each step discharges every active node of one layer at once, pushing
  its excess in proportion to the admissible residual capacities; waves alternate top-down and
  bottom-up, with exact breadth-first relabelling every few waves. Into the bottom layer, a node
  is never sent more than its sink arc can still take (the rest would only bounce back).
  Only the sink's arcs differ between the T inputs of one output token, so they are solved one
  after another on the same network: a solve starts from the previous preflow, with the old
  sink's flow cancelled a few layers up, and every min cut found so far is an upper bound that
  ends a later solve as soon as its flow reaches it.

Cost (scripts/bench.py, one run on 2 shared cores, load average 0.2–3.7): one output
row of ViT-base size (T=197, L=12) random row-stochastic maps in 1.87 s (networkx, one max-flow per
input: ~11 min extrapolated; scipy.sparse.csgraph.maximum_flow, C Dinic on capacities
scaled by 1e9 to integers: 2.85 s). Real attention has sharper bottlenecks and needs more waves per
input: all-MiniLM-L6-v2 at T=128, L=6 takes 1.62 s, where scipy takes 0.29 s but, on integer
capacities, differs by up to 3e-07 (this solver agrees with networkx to 2e-14).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attn_demos.core.aggregate import fuse_heads, with_residual

EPS = 1e-13  # a residual capacity or an excess at or below this counts as zero
UNREACHABLE = np.iinfo(np.int64).max // 4  # height of a node with no residual path to the sink
RELABEL_EVERY = 8  # waves between two exact (BFS) relabellings
PUSH_ROUNDS = 2  # push → relabel → push rounds per layer and wave
UNDO_LAYERS = 2  # a new sink first cancels the old sink's flow this many layers up
MAX_WAVES = 5_000  # per solve; far above what any solve has needed (tens of waves)

Progress = Callable[[int, int], None]  # (max flows solved, max flows in all)


class FlowCancelled(Exception):
    """The caller's `cancelled()` said stop; no partial flow is returned."""


def attention_flow(
    weights: np.ndarray,
    query_index: int | None = None,
    fusion: str = "mean",
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Attention flow of a stack of self-attention maps.

    weights: (L, H, T, T) attention of one example (rows are queries).
    Returns (T,) — the flow from every input token to output token `query_index` — or, when
    query_index is None, (T, T) with row i the flow into output token i.
    progress(done, total) is called after each max flow (one per input token and output row);
    when cancelled() turns true the computation stops between two of them with FlowCancelled.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"attention flow needs self-attention of shape (L, H, T, T), got {weights.shape}")
    length = weights.shape[-1]
    if query_index is not None and not -length <= query_index < length:
        raise IndexError(f"query_index {query_index} is out of range for {length} tokens")
    capacities = with_residual(fuse_heads(weights, fusion))  # (L, T, T)
    if query_index is not None:
        return flow_into(capacities, query_index % length, progress, cancelled)
    total = length * length

    def row_progress(row: int) -> Progress | None:
        return None if progress is None else (lambda done, _: progress(row * length + done, total))

    return np.stack([flow_into(capacities, i, row_progress(i), cancelled) for i in range(length)])  # (T, T)


def flow_into(
    capacities: np.ndarray, output: int, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None
) -> np.ndarray:
    """Max flow from every input node to node `output` of the top layer: (T,).

    capacities: (L, T, T); capacities[l, i, j] is the edge from node j of layer l to node i of
    layer l+1. progress and cancelled: as in attention_flow (one call per input node).
    """
    layers, length, _ = capacities.shape
    if layers == 1:
        return capacities[0, output].copy()  # (T,)
    if layers == 2:
        first = capacities[0]  # (T, T) [k, j]: input j -> middle k
        last = capacities[1, output]  # (T,) [k]: middle k -> output
        return np.minimum(first, last[:, None]).sum(axis=0)  # (T,)
    network = ReversedFlowNetwork(
        source_arcs=capacities[layers - 1, output],
        between=[capacities[layer] for layer in range(layers - 2, 0, -1)],
    )
    flows = np.zeros(length)  # (T,)
    for source in range(length):
        if cancelled is not None and cancelled():
            raise FlowCancelled(f"attention flow cancelled after {source} of {length} inputs")
        flows[source] = network.max_flow(capacities[0][:, source])
        if progress is not None:
            progress(source + 1, length)
    return flows


class ReversedFlowNetwork:
    """The attention network upside down, for one output token: a source (the output token)
    above n = L-1 inner layers of T nodes, and a sink (an input token) below them.

    Inner layer 0 is the model's layer L-1, inner layer n-1 the model's layer 1. Arc capacities:
    source -> (0, k): source_arcs[k]; (q, k) -> (q+1, m): between[q][k, m]; (n-1, k) -> sink:
    the sink arcs given to `max_flow`. The state is a preflow that later calls reuse.

    Every arc's state is kept twice, so that both push directions read and write rows:
    residual[q][k, m] (capacity left, by sender) and inflow[q][m, k] (flow carried, by receiver).
    """

    def __init__(self, source_arcs: np.ndarray, between: list[np.ndarray]):
        length = source_arcs.shape[0]
        self.layers = len(between) + 1
        self.length = length
        self.source_arcs = np.array(source_arcs, dtype=np.float64)  # (T,)
        self.residual = [np.array(arcs, dtype=np.float64) for arcs in between]  # n-1 × (T, T) [k, m]
        self.inflow = [np.zeros((length, length)) for _ in between]  # n-1 × (T, T) [m, k]
        self.excess = np.zeros((self.layers, length))  # (n, T)
        self.excess[0] = self.source_arcs  # the source arcs start saturated
        self.height = np.zeros((self.layers, length), dtype=np.int64)  # (n, T)
        self.sink_residual = np.zeros(length)  # (T,)
        self.sink_flow = np.zeros(length)  # (T,)
        self.cuts: list[tuple[float, np.ndarray]] = []  # (fixed capacity, bottom nodes on the source side)
        self.waves = 0  # total waves over all calls, for profiling

    def max_flow(self, sink_arcs: np.ndarray) -> float:
        """Max flow from the source to a sink reached by `sink_arcs` (T,) from the bottom layer."""
        self._take_back(self.sink_flow, UNDO_LAYERS)
        self.sink_flow = np.zeros_like(self.sink_flow)
        self.sink_residual = np.array(sink_arcs, dtype=np.float64)
        bound = min(self.source_arcs.sum(), self.sink_residual.sum(), self._best_known_cut(self.sink_residual))
        tolerance = 1e-11 * max(bound, EPS)
        self._relabel_all()
        waves = 0
        while self.sink_flow.sum() < bound - tolerance:
            toward_sink = waves % 2 == 0
            order = range(self.layers) if toward_sink else range(self.layers - 1, -1, -1)
            moved = [self._discharge(layer) for layer in order]
            waves += 1
            if waves > MAX_WAVES:
                raise RuntimeError(f"attention flow did not converge in {MAX_WAVES} waves")
            if waves % RELABEL_EVERY == 0 or not any(moved):
                self._relabel_all()
                if not self._active().any():
                    self._remember_cut()
                    break
        self.waves += waves
        return float(self.sink_flow.sum())

    def _take_back(self, returned: np.ndarray, depth: int) -> None:
        """Cancel flow `returned` (T,) that left the bottom layer, along the paths it came, `depth`
        layers up; it becomes excess where the cancelling stops."""
        layer = self.layers - 1
        for _ in range(depth):
            if layer == 0:
                break
            carried = self.inflow[layer - 1]  # (T, T) [m, k]
            total = carried.sum(axis=1)  # (T,)
            fraction = np.minimum(1.0, np.divide(returned, total, out=np.zeros_like(total), where=total > 0))
            cancel = carried * fraction[:, None]  # (T, T)
            self.inflow[layer - 1] = carried - cancel
            self.residual[layer - 1] += cancel.T
            self.excess[layer] += np.maximum(returned - total, 0.0)
            returned = cancel.sum(axis=0)  # (T,)
            layer -= 1
        self.excess[layer] += returned

    # -- pushes and relabels -------------------------------------------------------------

    def _active(self) -> np.ndarray:
        """(n, T) nodes with excess that may still reach the sink."""
        return (self.excess > EPS) & (self.height < UNREACHABLE)

    def _discharge(self, layer: int) -> bool:
        """Push every active node of `layer` along admissible arcs, relabel those left with excess."""
        active = (self.excess[layer] > EPS) & (self.height[layer] < UNREACHABLE)  # (T,)
        count = int(active.sum())
        if count == 0:
            return False
        for _ in range(PUSH_ROUNDS):
            # Few active nodes: gather their rows. Many: work on whole layers (views, no copies).
            rows = np.flatnonzero(active) if count < self.length // 4 else slice(None)
            left = (self.excess[layer] * active)[rows]  # (a,)
            target = self.height[layer][rows] - 1  # (a,) height of an admissible neighbour
            if layer == self.layers - 1:
                push = np.minimum(left, self.sink_residual[rows] * (target == 0))  # (a,)
                self.sink_residual[rows] -= push
                self.sink_flow[rows] += push
                left = left - push
            else:
                left = self._push_down(layer, rows, left, target)
            if layer > 0:
                left = self._push_back(layer, rows, left, target)
            self.excess[layer][rows] = np.where(active[rows], np.maximum(left, 0.0), self.excess[layer][rows])
            stuck = active.copy()
            stuck[rows] &= left > EPS  # (T,)
            if not stuck.any():
                break
            stuck_nodes = np.flatnonzero(stuck)
            self.height[layer, stuck_nodes] = self._lowest_neighbour(layer, stuck_nodes) + 1
            active = stuck & (self.height[layer] < UNREACHABLE)
            count = int(active.sum())
            if count == 0:
                break
        return True

    def _push_down(self, layer: int, rows, left: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Push from `rows` of `layer` to layer+1 (toward the sink); returns what is left (a,).

        Into the bottom layer, a node next to the sink never gets more than its sink arc takes:
        what it cannot pass on would only bounce back.
        """
        below = layer + 1
        residual = self.residual[layer][rows]  # (a, T)
        admissible = (self.height[below][None, :] == target[:, None]) & (residual > EPS)  # (a, T)
        if below == self.layers - 1:
            room = self._bottom_room()  # (T,)
            push = _fill_in_proportion(left, np.minimum(residual, room[None, :]) * admissible)  # (a, T)
            offered = push.sum(axis=0)  # (T,)
            push *= np.minimum(1.0, np.divide(room, offered, out=np.ones_like(room), where=offered > room))
        else:
            push = _fill_in_proportion(left, residual * admissible)  # (a, T)
        self.residual[layer][rows] = residual - push
        self.inflow[layer][:, rows] += push.T
        self.excess[below] += push.sum(axis=0)
        return left - push.sum(axis=1)

    def _bottom_room(self) -> np.ndarray:
        """(T,) how much more each bottom node can pass to the sink (inf: it sends back up)."""
        bottom = self.layers - 1
        stale = (self.height[bottom] == 1) & (self.sink_residual <= EPS)  # (T,) labels that lie
        if stale.any():
            nodes = np.flatnonzero(stale)
            self.height[bottom, nodes] = self._lowest_neighbour(bottom, nodes) + 1
        room = np.maximum(self.sink_residual - self.excess[bottom], 0.0)  # (T,)
        return np.where(self.height[bottom] == 1, room, np.inf)

    def _push_back(self, layer: int, rows, left: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Send excess of `rows` back up to layer-1 along arcs that carry flow; returns what is left."""
        carried = self.inflow[layer - 1][rows]  # (a, T): flow from (layer-1, p) into each node
        admissible = (self.height[layer - 1][None, :] == target[:, None]) & (carried > EPS)  # (a, T)
        push = _fill_in_proportion(left, carried * admissible)  # (a, T)
        self.inflow[layer - 1][rows] = carried - push
        self.residual[layer - 1][:, rows] += push.T
        self.excess[layer - 1] += push.sum(axis=0)
        return left - push.sum(axis=1)

    def _lowest_neighbour(self, layer: int, nodes: np.ndarray) -> np.ndarray:
        """(s,) lowest height among residual neighbours of `nodes` (the sink has height 0)."""
        far = UNREACHABLE - 1
        if layer == self.layers - 1:
            lowest = np.where(self.sink_residual[nodes] > EPS, 0, far)
        else:
            reachable = self.residual[layer][nodes] > EPS  # (s, T)
            lowest = np.where(reachable, self.height[layer + 1][None, :], far).min(axis=1)
        if layer > 0:
            reachable = self.inflow[layer - 1][nodes] > EPS  # (s, T)
            lowest = np.minimum(lowest, np.where(reachable, self.height[layer - 1][None, :], far).min(axis=1))
        return lowest

    def _relabel_all(self) -> None:
        """Exact heights: breadth-first distances to the sink over residual arcs."""
        height = np.full_like(self.height, UNREACHABLE)  # (n, T)
        frontier = np.zeros(height.shape, dtype=bool)  # (n, T)
        frontier[-1] = self.sink_residual > EPS
        height[frontier] = 1
        distance = 1
        while frontier.any():
            reached = np.zeros_like(frontier)  # (n, T)
            for layer in np.flatnonzero(frontier.any(axis=1)):
                front = frontier[layer]  # (T,)
                if layer > 0:  # (layer-1, k) -> (layer, m) with capacity left
                    reached[layer - 1] |= (self.residual[layer - 1] * front[None, :]).max(axis=1) > EPS
                if layer < self.layers - 1:  # (layer+1, m) -> (layer, k) back along flow
                    reached[layer + 1] |= (self.inflow[layer] * front[None, :]).max(axis=1) > EPS
            frontier = reached & (height == UNREACHABLE)
            distance += 1
            height[frontier] = distance
        self.height = height

    # -- upper bounds from earlier min cuts ----------------------------------------------

    def _remember_cut(self) -> None:
        """Store the min cut now proven: nodes that cannot reach the sink vs those that can."""
        sink_side = self.height < UNREACHABLE  # (n, T)
        fixed = float(self.source_arcs[sink_side[0]].sum())
        for layer, residual in enumerate(self.residual):
            capacity = residual + self.inflow[layer].T  # (T, T) [k, m]
            fixed += float(capacity[~sink_side[layer]][:, sink_side[layer + 1]].sum())
        bottom_source_side = ~sink_side[-1]  # (T,)
        if not any(f == fixed and np.array_equal(b, bottom_source_side) for f, b in self.cuts):
            self.cuts.append((fixed, bottom_source_side))

    def _best_known_cut(self, sink_arcs: np.ndarray) -> float:
        return min((fixed + float(sink_arcs[bottom].sum()) for fixed, bottom in self.cuts), default=np.inf)


def _fill_in_proportion(amounts: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """Split amounts[r] over capacities[r, :] in proportion to them (all of each row if it fits).

    amounts: (a,), capacities: (a, T) -> (a, T) with row r summing to min(amounts[r], Σ capacities[r]).
    """
    total = capacities.sum(axis=1)  # (a,)
    fraction = np.minimum(1.0, np.divide(amounts, total, out=np.zeros_like(amounts), where=total > 0))  # (a,)
    return capacities * fraction[:, None]
