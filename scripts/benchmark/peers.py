"""The peers and attn-demos' verified paths, timed in the same rounds on one model and one input.

Every path gets attention (or checks it) for the same tokens; each round runs every path once,
in the listed order on even rounds and reversed on odd ones, and a path's ratio is the median
over rounds of its time ÷ the plain sdpa forward's time in that round. The plain forward also
clocks the time spent inside torch's scaled_dot_product_attention: 1 + that share is the floor
of an exact check against the library's kernel (it computes attention a second time).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmark.peak import peak_extra_mb
from benchmark.peer_models import PeerModel, bridge_twin, token_ids
from benchmark.report import Metric, metric
from benchmark.timing import as_eager, as_sdpa

WEIGHTS_KEPT_GOAL = 1.15  # issue 24: verified attention with the weights kept for a view
FLOOR_MARGIN = 0.05  # issue 24: the sdpa verification without weights, at most floor + this
PATTERN_HOOK = "hook_pattern"  # TransformerLens's hook on each layer's attention weights
BRIDGE_MISSING = "TransformerLens is not installed (pip install -e '.[bench]')"
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # cpu: this process's CPU time (bench_peers --clock)
clock = CLOCKS["wall"]  # what every path and the floor are timed with


@dataclass(frozen=True)
class Path:
    name: str
    label: str  # what it runs, for a person
    goal: str | None  # "kept": <= WEIGHTS_KEPT_GOAL; "floor": <= floor + FLOOR_MARGIN; None: a peer
    run: Callable[[], object]
    check: Callable[[object], float] | None = None  # the result's largest error (verified paths)


class SdpaClock:
    """While active, adds the seconds spent inside torch's scaled_dot_product_attention to
    `seconds` (transformers looks the function up at each call; the CPU runs it synchronously)."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self.fused = torch.nn.functional.scaled_dot_product_attention

        def timed(*args, **kwargs):
            start = clock()
            try:
                return self.fused(*args, **kwargs)
            finally:
                self.seconds += clock() - start

        torch.nn.functional.scaled_dot_product_attention = timed
        return self

    def __exit__(self, *exc):
        torch.nn.functional.scaled_dot_product_attention = self.fused


def transformer_lens_bridge(peer: PeerModel):
    """(bridge, None), or (None, the reason it cannot run here)."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:
        return None, BRIDGE_MISSING
    twin = bridge_twin(peer)
    tokenizer = peer.loaded.preprocessor
    return TransformerBridge.boot_transformers(peer.name, hf_model=twin, tokenizer=tokenizer, device="cpu"), None


def paths_for(peer: PeerModel, ids: torch.Tensor, bridge, shares: list[float]) -> list[Path]:
    """Every path on `ids` (1, T); the plain forward appends its attention share to `shares`."""
    from attn_demos.adapters.extract import Side, forward_with_attention
    from attn_demos.adapters.verify import forward_with_verification

    loaded, model = peer.loaded, peer.model
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}  # (1, T) each
    side = Side([_labels(peer, ids)], inputs["attention_mask"].bool())
    last = peer.layers - 1

    def plain():
        with SdpaClock() as inside:
            start = clock()
            out = model(**inputs)
            shares.append(inside.seconds / (clock() - start))
        return out

    def verify(wants):
        return lambda: forward_with_verification(loaded, inputs, side, keep_weights=True, wants_weights=wants)

    def recompute_and_compare():
        result = forward_with_attention(loaded, inputs, side, recompute=True, logit_size=False)  # as tasks/checked.py
        return max(
            float((result.maps[kind].weights - recomputed).abs().max()) for kind, recomputed in result.recomputed.items()
        )  # max |library − recomputed|, as the tabs show it

    found = [
        Path("plain", "plain sdpa forward", None, as_sdpa(model, plain)),
        Path(
            "eager_attentions",
            "transformers eager forward, output_attentions=True (BertViz's path)",
            None,
            as_eager(model, lambda: model(**inputs, output_attentions=True)),
        ),
    ]
    if bridge is not None:
        found.append(
            Path(
                "transformer_lens",
                "TransformerLens 4 bridge, run_with_cache(names_filter=hook_pattern)",
                None,
                torch.no_grad()(
                    lambda: bridge.run_with_cache(ids, names_filter=lambda name: name.endswith(PATTERN_HOOK))
                ),
            )
        )
        if peer.name == "minilm":
            head = bridge.original_model
            found.append(
                Path(
                    "plain_with_mlm_head",
                    "plain sdpa forward with a masked-LM head (what the TransformerLens row runs for BERT)",
                    None,
                    as_sdpa(head, lambda: head(**inputs)),
                )
            )
    found += [
        Path(
            "verify",
            "attn-demos sdpa verification, no weights kept (compare --attn-implementation sdpa)",
            "floor",
            as_sdpa(model, verify(lambda site: False)),
            _largest_relative_error,
        ),
        Path(
            "verify_one_layer",
            "attn-demos sdpa verification, the last layer's weights kept (one view)",
            "kept",
            as_sdpa(model, verify(lambda site: site.layer == last)),
            _largest_relative_error,
        ),
        Path(
            "verify_all_layers",
            "attn-demos sdpa verification, every layer's weights kept",
            "kept",
            as_sdpa(model, verify(lambda site: True)),
            _largest_relative_error,
        ),
        Path(
            "eager_recompute",
            "attn-demos eager capture + recompute, compared (what the tabs run on the CPU)",
            "kept",
            as_eager(model, recompute_and_compare),
            float,
        ),
    ]
    return found


def case_name(peer: PeerModel, length: int) -> str:
    """The metrics' prefix for one case: peers/<model>/<layers>L/<tokens>."""
    return f"peers/{peer.name}/{peer.layers}L/{length}"


def _largest_relative_error(verified) -> float:
    return max(float(errors.max()) for errors in verified.errors.values())


def _labels(peer: PeerModel, ids: torch.Tensor) -> list[str]:
    if peer.name == "minilm":
        return peer.loaded.preprocessor.convert_ids_to_tokens(ids[0].tolist())
    return [f"#{i}" for i in ids[0].tolist()]


def timed_rounds(paths: list[Path], rounds: int) -> dict[str, list[float]]:
    """Seconds of each path per round; order alternated (listed, then reversed, …)."""
    times: dict[str, list[float]] = {p.name: [] for p in paths}
    for index in range(rounds):
        for path in paths if index % 2 == 0 else paths[::-1]:
            gc.collect()  # a path's result is dropped before the next one runs
            start = clock()
            path.run()
            times[path.name].append(clock() - start)
    return times


def measure(peer: PeerModel, length: int, rounds: int, memory: bool, bridge=None, bridge_reason=None) -> list[Metric]:
    """The rows of one (model, length) case: one metric per path (its median ratio), the floor,
    the plain forward's seconds; peak extra memory per path when `memory`."""
    from attn_demos.adapters.precision import tolerance_for

    ids = token_ids(peer, length)  # (1, T)
    shares: list[float] = []
    paths = paths_for(peer, ids, bridge, shares)
    tolerance = tolerance_for(peer.loaded.dtype)
    memory_rows = _memory(peer, length, paths) if memory else []  # from a state no path has run in
    errors = {}
    for path in paths:  # warm-up, and each verified path's result checked once
        result = path.run()
        if path.check is not None:
            errors[path.name] = path.check(result)
        del result
    shares.clear()
    times = timed_rounds(paths, rounds)
    floor = 1 + statistics.median(shares)
    case = dict(model=peer.name, tokens=length, layers=peer.layers, heads=peer.heads, rounds=rounds)
    plain = times["plain"]
    rows = [
        metric(f"{case_name(peer, length)}/plain_seconds", statistics.median(plain), "s", None, **case),
        metric(f"{case_name(peer, length)}/floor", floor, "×", None, attention_share=floor - 1, **case),
    ]
    if bridge is None:
        rows[0].details["transformer_lens_skipped"] = bridge_reason
    for path in paths[1:]:
        ratios = [t / p for t, p in zip(times[path.name], plain)]
        limit = {"kept": WEIGHTS_KEPT_GOAL, "floor": floor + FLOOR_MARGIN}.get(path.goal)
        text = {"kept": f"<= {WEIGHTS_KEPT_GOAL:g}", "floor": f"<= floor + {FLOOR_MARGIN:g} = {floor + FLOOR_MARGIN:.2f}"}
        goal = None if limit is None else (text[path.goal], lambda value, limit=limit: value <= limit)
        details = dict(
            label=path.label,
            seconds=statistics.median(times[path.name]),
            ratio_min=min(ratios),
            ratio_max=max(ratios),
            **case,
        )
        if path.name in errors:
            details.update(largest_error=errors[path.name], tolerance=tolerance, passed=errors[path.name] <= tolerance)
        if path.name == "transformer_lens" and peer.name == "minilm":
            head = times["plain_with_mlm_head"]
            details["ratio_to_plain_with_mlm_head"] = statistics.median(
                [t / h for t, h in zip(times[path.name], head)]
            )
        rows.append(metric(f"{case_name(peer, length)}/{path.name}", statistics.median(ratios), "×", goal, **details))
    for row in memory_rows:
        row.details.update(rounds=rounds)
    return rows + memory_rows


def _memory(peer: PeerModel, length: int, paths: list[Path]) -> list[Metric]:
    """Peak extra memory of each path's first call, before the timed rounds: TransformerLens keeps
    its last patterns between calls, so its first call is measured first, before anything it
    keeps is resident; what each path keeps after its call is reported beside its peak."""
    first = sorted(paths, key=lambda path: path.name != "transformer_lens")
    case = dict(model=peer.name, tokens=length, layers=peer.layers, heads=peer.heads)
    rows = []
    for path in first:
        peak, kept = peak_extra_mb(path.run)
        name = f"{case_name(peer, length)}/{path.name}/peak_extra_mb"
        rows.append(metric(name, peak, "MB", None, kept_after_call_mb=kept, **case))
    return rows
