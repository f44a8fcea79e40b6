"""torch_threads: a request thread's own torch thread count, set for a block and put back."""

from __future__ import annotations

import threading

import pytest
import torch

from attn_demos.tasks.threads import torch_threads


def test_the_count_holds_inside_the_block_and_is_put_back():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_another_running_thread_keeps_its_count():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    inside, entered, release = {}, threading.Event(), threading.Event()

    def request():
        with torch_threads(1):
            inside["request"] = torch.get_num_threads()
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=request)
    worker.start()
    entered.wait(10)
    try:
        assert inside["request"] == 1
        assert torch.get_num_threads() == 2  # OpenMP keeps the count per thread
    finally:
        release.set()
        worker.join()
        torch.set_num_threads(previous)


def test_the_count_is_put_back_when_the_block_fails():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("a failing request")
    assert torch.get_num_threads() == before


def test_zero_threads_are_refused():
    with pytest.raises(ValueError, match="at least one"), torch_threads(0):
        pass
