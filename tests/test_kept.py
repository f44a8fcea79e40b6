"""What the app keeps of visitors' results is bounded in bytes ($ATTN_DEMOS_KEPT_MB): the oldest
results are let go of first, the newest is always kept, and a view of a let-go result asks for a
new run in one line instead of failing."""

from __future__ import annotations

import gc

import pytest

from attn_demos import cli
from attn_demos.settings import Settings, SettingsError, variable
from attn_demos.ui import explorer, kept, wiring

KEPT_ENV = variable("kept_mb")

TEXTS = ("The cat sat on the mat.", "Attention is all you need.", "A third text, read last.")


@pytest.fixture
def account(monkeypatch):
    """A fresh account of kept results, in place of the app's."""
    fresh = kept.KeptResults()
    monkeypatch.setattr(kept, "KEPT", fresh)
    return fresh


def run(text: str):
    """One Explorer run as the app makes it (wiring.handler); returns the result it keeps."""
    values = dict(zip(explorer.RUN_OUTPUTS, wiring.handler(explorer.explore, explorer.RUN_OUTPUTS)(text, 0, "mean", False, "")))
    assert values["state"] is not None, values["status"]
    return values["state"]


def redraw(result) -> dict:
    return dict(zip(explorer.REDRAW_OUTPUTS, wiring.handler(explorer.redraw, explorer.REDRAW_OUTPUTS)(result, 1, 2, False)))


def test_the_oldest_results_are_let_go_of_beyond_the_budget(use_settings, account):
    first = run(TEXTS[0])
    size = kept.array_bytes(first)
    assert size == first.library.nbytes + first.recomputed.nbytes > 0  # the two stacks an eager result keeps
    use_settings(kept_mb=2.5 * size / 2**20)  # room for two results of this size, not three
    second = run(TEXTS[1])
    assert not kept.is_released(first) and not kept.is_released(second)
    third = run(TEXTS[2])
    assert kept.is_released(first) and first.library is None and first.recomputed is None
    assert not kept.is_released(second) and not kept.is_released(third)
    assert account.total() == kept.array_bytes(second) + kept.array_bytes(third) <= 2.5 * size

    shown = redraw(first)
    assert shown["status"] == f"⚠️ {kept.released_text()}" and shown["heatmap"] is None
    assert "max |Δ|" in redraw(third)["badge"]  # control: a kept result still draws


def test_the_newest_result_is_kept_even_alone_over_the_budget(use_settings, account):
    use_settings(kept_mb=0.001)
    only = run(TEXTS[0])
    assert not kept.is_released(only) and "max |Δ|" in redraw(only)["badge"]
    newer = run(TEXTS[1])
    assert kept.is_released(only) and not kept.is_released(newer)


def test_a_result_gone_with_its_session_no_longer_counts(account):
    result = run(TEXTS[0])
    assert account.total() == kept.array_bytes(result)
    del result
    gc.collect()
    assert account.total() == 0


@pytest.mark.parametrize("value", ["0", "-1", "many", "nan"])
def test_a_bad_kept_budget_is_one_line_and_stops_launch(monkeypatch, capsys, value):
    with pytest.raises(SettingsError, match=f"{KEPT_ENV} must be a positive number of megabytes"):
        Settings.from_env({KEPT_ENV: value})
    monkeypatch.setenv(KEPT_ENV, value)
    assert cli.main(["launch"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert KEPT_ENV in error and "\n" not in error


def test_only_results_with_arrays_are_counted(account):
    for value in ({"text": "a dict"}, ["a", "list"], "a string", None):
        account.keep(value)
    assert account.total() == 0 and not kept.is_released({"text": "a dict"})
