"""``koopman_lib.threads.torch_threads``: the thread count for a block, restored after it, and
``torch.set_num_threads`` called only where the count changes (a call with more than one thread,
even to the count already set, is what makes oneMKL's batched LU hang: koopman_lib.lu)."""
import pytest
import torch

from koopman_lib import threads
from koopman_lib.threads import torch_threads


def test_torch_threads_sets_and_restores_even_on_error():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_set_num_threads_is_called_only_when_the_count_changes(monkeypatch):
    count = [3]
    calls = []
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: count[0])
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: calls.append(n) or count.__setitem__(0, n))
    for n in (3, None, 0):                      # the count it has, or leave as is: no call at all
        with torch_threads(n):
            assert count[0] == 3
    assert calls == []
    with pytest.raises(ValueError), torch_threads(1):
        assert count[0] == 1
        raise ValueError("inside")
    assert calls == [1, 3] and count[0] == 3
