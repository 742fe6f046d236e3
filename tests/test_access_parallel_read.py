"""A large read split between this process and a forked child returns exactly what one process returns."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from demo_helpers import build

from cdp.access import AccessContext, CustomerStore, _parallel
from cdp.access._parallel import can_fork, map_in_halves
from cdp.access.store import PROFILE_FIELDS

MARKETER = AccessContext("user:m", "marketer", "analytics")
OFFICER = AccessContext("user:o", "compliance_officer", "compliance")


def _pids(items: Sequence[int]) -> list[int]:
    return [os.getpid()] * len(items)


def test_the_second_half_runs_in_a_child_and_comes_back_in_order() -> None:
    if not can_fork():
        pytest.fail("the test process runs several threads: the split would never be used here")
    items = list(range(10))
    first, second = map_in_halves(lambda part: [i * 2 for i in part], items, min_items=2)
    assert first + second == [i * 2 for i in items]
    assert _parallel.outcome["last"] == "child"
    here, there = map_in_halves(_pids, items, min_items=2)
    assert set(here) == {os.getpid()} and len(set(there)) == 1 and there[0] != os.getpid()


def test_small_reads_and_a_disabled_split_stay_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert map_in_halves(_pids, list(range(10)), min_items=11) == [[os.getpid()] * 10]
    monkeypatch.setenv("CDP_NO_PARALLEL_READS", "1")
    assert map_in_halves(_pids, list(range(10)), min_items=2) == [[os.getpid()] * 10]


def test_a_failing_child_half_is_redone_here_and_its_error_raised_here() -> None:
    calls: list[int] = []

    def work(part: Sequence[int]) -> list[int]:
        calls.append(os.getpid())  # the child's append is lost with the child
        if 9 in part:
            raise ValueError("bad item 9")
        return list(part)

    with pytest.raises(ValueError, match="bad item 9"):
        map_in_halves(work, list(range(10)), min_items=2)
    assert _parallel.outcome["last"] == "redone"
    assert calls == [os.getpid(), os.getpid()]  # first half here, then the child's half redone here


@pytest.mark.parametrize("ctx", [MARKETER, OFFICER], ids=["marketer", "compliance"])
def test_a_split_read_equals_a_single_process_read(
    store: CustomerStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctx: AccessContext
) -> None:
    build(store, tmp_path / "demo")
    fields = [f for f in PROFILE_FIELDS if f != "profile_id"]
    monkeypatch.setenv("CDP_NO_PARALLEL_READS", "1")
    store._ciphers.clear()
    alone = store.read_profiles(ctx, fields, with_provenance=True)
    monkeypatch.delenv("CDP_NO_PARALLEL_READS")
    monkeypatch.setattr(_parallel, "PARALLEL_MIN_ITEMS", 2)
    assert can_fork(), "a thread is running: the read below would not be split"
    store._ciphers.clear()  # cold: each process unwraps the keys of its own half
    split = store.read_profiles(ctx, fields, with_provenance=True)
    assert _parallel.outcome["last"] == "child"
    assert len(alone) > 50
    assert split == alone
    assert any(r.get("email") for r in split)
