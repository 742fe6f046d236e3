"""A large read shared between this process and a forked child returns exactly what one process returns."""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest
from demo_helpers import build

from cdp.access import AccessContext, CustomerStore, _parallel
from cdp.access._parallel import SharedWork, can_fork, map_split
from cdp.access._profiles import ProfileMixin
from cdp.access.store import PROFILE_FIELDS

MARKETER = AccessContext("user:m", "marketer", "analytics")
OFFICER = AccessContext("user:o", "compliance_officer", "compliance")


def _pids(items: Sequence[int]) -> list[int]:
    time.sleep(0.01)  # slow enough that the child starts before this process has taken every chunk
    return [os.getpid()] * len(items)


def test_chunks_are_shared_with_a_child_and_come_back_in_order() -> None:
    if not can_fork():
        pytest.fail("the test process runs several threads: the split would never be used here")
    items = list(range(100))
    parts = map_split(lambda part: [i * 2 for i in part], items, min_items=2, chunks=7)
    assert len(parts) == 7
    assert [i for part in parts for i in part] == [i * 2 for i in items]
    assert _parallel.outcome["last"] == "child"
    pids = [pid for part in map_split(_pids, items, min_items=2, chunks=20) for pid in part]
    assert len(pids) == 100
    assert os.getpid() in pids, "this process took no chunk"
    assert len(set(pids) - {os.getpid()}) == 1, "no chunk was done by a (single) child"


def test_every_chunk_is_done_exactly_once() -> None:
    """Each chunk number is read out of the pipe by one process only: nothing done twice, nothing skipped."""
    items = list(range(5000))
    parts = map_split(lambda part: [(i, os.getpid()) for i in part], items, min_items=2, chunks=500)
    assert [i for part in parts for i, _ in part] == items
    assert _parallel.outcome["last"] == "child"


def test_small_reads_and_a_disabled_split_stay_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert map_split(_pids, list(range(10)), min_items=11) == [[os.getpid()] * 10]
    monkeypatch.setenv("CDP_NO_PARALLEL_READS", "1")
    assert map_split(_pids, list(range(10)), min_items=2) == [[os.getpid()] * 10]


def test_a_failing_child_chunk_is_redone_here_and_its_error_raised_here() -> None:
    parent = os.getpid()
    calls: list[int] = []

    def work(part: Sequence[int]) -> list[int]:
        # This process is slow, so the child takes every chunk after the first and fails on the last.
        time.sleep(0.3 if os.getpid() == parent else 0)
        calls.append(part[0])  # the child's appends are lost with the child
        if 9 in part:
            raise ValueError("bad item 9")
        return list(part)

    _parallel.outcome["last"] = "none"
    with pytest.raises(ValueError, match="bad item 9"):
        map_split(work, list(range(10)), min_items=2, chunks=10)
    assert _parallel.outcome["last"] == "redone"
    # The chunks this process took itself (usually just the first, whichever the two processes'
    # race gave it: under load the child can win chunk 0), then the child's failed chunk redone
    # here; the others came back from the child and were not done again.
    assert calls[-1] == 9 and len(calls) == len(set(calls)) and len(calls) <= 3, calls


def test_a_child_that_dies_leaves_its_chunks_to_this_process() -> None:
    parent = os.getpid()

    def work(part: Sequence[int]) -> list[int]:
        time.sleep(0.01)
        if os.getpid() != parent:
            os._exit(3)  # killed mid-read: nothing comes back through the pipe
        return [i * 3 for i in part]

    parts = map_split(work, list(range(40)), min_items=2, chunks=8)
    assert [i for part in parts for i in part] == [i * 3 for i in range(40)]
    assert _parallel.outcome["last"] == "redone"


def test_a_streaming_child_hands_each_chunk_back_as_it_finishes_it() -> None:
    """With ``stream=True`` this process has the child's chunks before it asks for the results,
    and no thread of the split is left once they are collected."""
    items = list(range(60))
    shared = SharedWork(lambda part: [i * 5 for i in part], items, min_items=2, chunks=6, stream=True).start()
    assert shared._process is not None, "no child was forked"
    if sys.platform == "linux":  # room for ~7 chunks of a profile read, so the child seldom waits
        assert fcntl.fcntl(shared._receiving.fileno(), fcntl.F_GETPIPE_SZ) == _parallel._STREAM_PIPE_BYTES
    deadline = time.monotonic() + 10
    while len(shared._theirs) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)  # this process takes no chunk meanwhile: the child does them all
    assert sorted(shared._theirs) == list(range(6)), "the child's chunks did not come back before the end"
    parts = shared.finish()
    assert [i for part in parts for i in part] == [i * 5 for i in items]
    assert _parallel.outcome["last"] == "child"
    assert threading.active_count() == 1, "the receiving thread outlived the read"


def test_a_streaming_child_that_dies_keeps_the_chunks_it_handed_back() -> None:
    parent = os.getpid()
    done_here: list[int] = []

    def work(part: Sequence[int]) -> list[int]:
        if os.getpid() == parent:
            done_here.append(part[0])
        elif 30 in part:
            os._exit(3)  # killed mid-read, after handing back the chunks before this one
        return [i * 3 for i in part]

    shared = SharedWork(work, list(range(40)), min_items=2, chunks=8, stream=True).start()
    process = shared._process
    assert process is not None, "no child was forked"
    process.join(10)  # this process takes no chunk meanwhile: the child hands back 0-5 and dies on 6
    assert not process.is_alive()
    parts = shared.finish()
    assert [i for part in parts for i in part] == [i * 3 for i in range(40)]
    assert _parallel.outcome["last"] == "redone"
    assert sorted(done_here) == [30, 35], (
        "chunks the child had handed back were done again, or its failed chunk was not"
    )
    assert threading.active_count() == 1


def _slowly(part: Sequence[int]) -> list[int]:
    """The items, 50 ms each."""
    out: list[int] = []
    for i in part:
        time.sleep(0.05)
        out.append(i)
    return out


def test_cancelling_a_streaming_split_stops_the_child_and_the_receiving_thread() -> None:
    shared = SharedWork(_slowly, list(range(400)), min_items=2, chunks=40, stream=True).start()
    process = shared._process
    assert process is not None
    time.sleep(0.2)
    shared.cancel()
    assert not process.is_alive()
    assert threading.active_count() == 1, "the receiving thread outlived the cancelled read"


@pytest.mark.parametrize("stream", [False, True], ids=["at-the-end", "streaming"])
def test_an_error_in_this_process_ends_the_split_without_waiting_on_the_child(stream: bool) -> None:
    """This process's own chunk fails: the error is raised at once, not after the child has been
    waited for (a child sending more than a pipe holds to nobody would block until killed)."""
    parent = os.getpid()

    def work(part: Sequence[int]) -> list[bytes]:
        if os.getpid() == parent:
            time.sleep(0.2)  # the child does the other chunks meanwhile and has ~8 MB to send
            raise ValueError("bad chunk here")
        return [os.urandom(4096) for _ in part]

    shared = SharedWork(work, list(range(2000)), min_items=2, chunks=2, stream=stream).start()
    process = shared._process
    assert process is not None, "no child was forked"
    started = time.monotonic()
    with pytest.raises(ValueError, match="bad chunk here"):
        shared.finish()
    assert time.monotonic() - started < 3, "the failing read waited for its child"
    assert not process.is_alive()
    assert threading.active_count() == 1


def test_a_child_whose_parent_stops_reading_exits_instead_of_blocking() -> None:
    """A killed parent reads nothing more: the child's send must fail, not wait forever.

    Its results (~4 MB) are far more than a pipe holds, so the child blocks in ``send_bytes``
    until a reader takes them; closing this process's receiving end stands in for its death.
    """
    shared = SharedWork(lambda part: [os.urandom(4096) for _ in part], list(range(2000)), min_items=2, chunks=2).start()
    process = shared._process
    assert process is not None, "no child was forked"
    time.sleep(0.5)  # the child is done with its chunks and blocked sending them
    shared._receiving.close()
    process.join(10)
    alive = process.is_alive()
    if alive:
        process.kill()
        process.join()
    os.close(shared._take_end)
    shared._process = None
    assert not alive, "the child stayed blocked on a pipe nobody reads"


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


@pytest.mark.parametrize("provenance", [False, True], ids=["fast-path", "provenance"])
def test_a_whole_table_read_is_fetched_in_two_parts_around_the_fork(
    store: CustomerStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provenance: bool
) -> None:
    """The first part is fetched before the child starts, the rest while it works; the rows are
    those of a one-process read, in its order, even when the parts are not id ranges."""
    build(store, tmp_path / "demo")
    asks = [
        [f for f in PROFILE_FIELDS if f != "profile_id"],
        ["email", "phone", "given_name", "family_name", "city", "country"],
    ]
    monkeypatch.setenv("CDP_NO_PARALLEL_READS", "1")
    alone = [store.read_profiles(ctx, ask, with_provenance=provenance) for ctx in (MARKETER, OFFICER) for ask in asks]
    monkeypatch.delenv("CDP_NO_PARALLEL_READS")
    monkeypatch.setattr(_parallel, "PARALLEL_MIN_ITEMS", 2)
    parts: list[tuple[object, object]] = []
    fetch = ProfileMixin._profile_records

    def spying(self: CustomerStore, *args: object, **kwargs: object) -> object:
        parts.append(kwargs.get("part", (None, None)))  # type: ignore[arg-type]
        return fetch(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ProfileMixin, "_profile_records", spying)
    split = [store.read_profiles(ctx, ask, with_provenance=provenance) for ctx in (MARKETER, OFFICER) for ask in asks]
    assert split == alone
    assert _parallel.outcome["last"] == "child"
    assert len(parts) == 2 * len(split) and parts[0][0] is None and parts[0][1] == parts[1][0] is not None

    def swapped(self: CustomerStore, *args: object, **kwargs: object) -> object:
        low, high = cast("tuple[object, object]", kwargs.pop("part"))
        # The later table part first: the child's rows then sort after this process's.
        kwargs["part"] = (high, None) if low is None else (None, low)
        return fetch(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ProfileMixin, "_profile_records", swapped)
    assert [
        store.read_profiles(ctx, ask, with_provenance=provenance) for ctx in (MARKETER, OFFICER) for ask in asks
    ] == alone


def test_a_failing_second_fetch_stops_the_child_and_raises(
    store: CustomerStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(store, tmp_path / "demo", customers=40)
    monkeypatch.setattr(_parallel, "PARALLEL_MIN_ITEMS", 2)
    fetch = ProfileMixin._profile_records
    children: list[object] = []
    start = SharedWork.start

    def recording(self: SharedWork[object, object]) -> SharedWork[object, object]:
        started = start(self)
        children.append(self._process)
        return started

    def failing(self: CustomerStore, *args: object, **kwargs: object) -> object:
        if kwargs.get("part", (None, None))[0] is not None:  # type: ignore[index]
            raise RuntimeError("the database went away")
        return fetch(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SharedWork, "start", recording)
    monkeypatch.setattr(ProfileMixin, "_profile_records", failing)
    with pytest.raises(RuntimeError, match="went away"):
        store.read_profiles(MARKETER, ["email", "city"])
    assert len(children) == 1
    child = children[0]
    assert child is not None, "the first part was not shared with a child"
    assert not child.is_alive()  # type: ignore[attr-defined]  # killed and reaped, not left running
