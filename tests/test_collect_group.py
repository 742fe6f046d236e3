"""The ``/v1/batch`` group commit waits for requests still in the parser, and only for those.

``GroupWriter._linger`` is a fast path (fewer, larger transactions); compared here with the plain
path: the same outcomes per request, one transaction instead of two, and no wait at all when no
request is being parsed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from cdp.api import collect
from cdp.api.collect import GroupWriter
from cdp.model import IngestOutcome


class _FakeStore:
    """What GroupWriter uses of a store; records each transaction's batch sizes."""

    def __init__(self) -> None:
        self.transactions: list[list[int]] = []
        self.engine = self

    name = "sqlite"

    @property
    def dialect(self) -> Any:
        return self

    def row_maker(self, dialect: Any) -> Any:
        class _Maker:
            converted = True

        return _Maker()

    def quarantine_many(self, ctx: Any, entries: list[Any]) -> int:
        return len(entries)

    def ingest_ready(self, ctx: Any, batches: list[list[Any]], *, converted: bool) -> list[IngestOutcome]:
        self.transactions.append([len(b) for b in batches])
        return [IngestOutcome(len(b), 0) for b in batches]


async def _two_requests(writer: GroupWriter, parsing: bool) -> list[IngestOutcome]:
    async def late() -> IngestOutcome:
        await asyncio.sleep(0.005)  # being parsed
        if parsing:
            writer.parsing -= 1
        return await writer.write([("r",)] * 3, [])

    if parsing:
        writer.parsing += 1  # the second request is in the parser when the first one writes
    second = asyncio.ensure_future(late())
    first = await writer.write([("r",)] * 2, [])
    return [first, await second]


@pytest.mark.parametrize("parsing", [True, False])
def test_a_transaction_waits_for_requests_in_the_parser(monkeypatch: pytest.MonkeyPatch, parsing: bool) -> None:
    monkeypatch.setattr(collect, "GROUP_LINGER", 5.0)  # bounded by the parse, not by this
    store = _FakeStore()
    writer = GroupWriter(store)  # type: ignore[arg-type]
    started = time.monotonic()
    outcomes = asyncio.run(_two_requests(writer, parsing))
    assert [o.accepted for o in outcomes] == [2, 3]  # each request its own outcome, either way
    if parsing:  # fast path: both requests in one transaction
        assert store.transactions == [[2, 3]]
    else:  # plain path: nobody in the parser, the first request is written at once
        assert store.transactions == [[2], [3]]
    assert time.monotonic() - started < 2.0
    assert writer.parsing == 0


def test_the_wait_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "GROUP_LINGER", 0.02)
    store = _FakeStore()
    writer = GroupWriter(store)  # type: ignore[arg-type]
    writer.parsing = 1  # a request that never arrives (its parse failed elsewhere)
    started = time.monotonic()
    outcome = asyncio.run(writer.write([("r",)], []))
    assert outcome.accepted == 1 and store.transactions == [[1]]
    assert time.monotonic() - started < 1.0
