"""Records collected over HTTP join their profiles shortly after they are stored.

Why this module exists: the collection endpoint must answer fast and must not
fail a client's call because identity matching is busy, yet an ``identify``
call should land in its person's profile within moments, not at the next batch
run. So the endpoint only hands the stored record ids to a
:class:`BackgroundMatcher`: one task per application that waits a moment to
gather ids from concurrent requests, then runs the incremental matcher
(:func:`cdp.identity.realtime.match_new_records`) on a worker thread. Rounds
never overlap; ids that arrive during a round wait for the next one. A failed
round is logged (ids and counts only) and its ids are left for the next batch
run or ``cdp identity match-new``: nothing is lost, since matching only ever
reads stored records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import anyio.to_thread
import structlog

from cdp.access import CustomerStore
from cdp.identity.realtime import RealtimeReport, match_new_records
from cdp.settings import Settings

_log = structlog.get_logger(__name__)


class BackgroundMatcher:
    def __init__(self, store: CustomerStore, settings: Settings, *, gather_seconds: float = 0.2) -> None:
        self.store = store
        self.settings = settings
        self.gather_seconds = gather_seconds
        self.pending: set[str] = set()
        self.rounds = 0
        self.last: RealtimeReport | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def submit(self, record_ids: Iterable[str]) -> None:
        """Queue stored records for matching (called on the event loop, after their commit)."""
        before = len(self.pending)
        self.pending.update(record_ids)
        if len(self.pending) > before:
            self._idle.clear()
            self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="cdp-background-matcher")

    async def stop(self) -> None:
        """Match what is still queued, then stop."""
        if self._task is None:
            return
        if self.pending:
            await self._round()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def settled(self) -> None:
        """Wait until every queued record has been through a round (for tests and shutdown)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.gather_seconds)
            await self._round()

    async def _round(self) -> None:
        self._wake.clear()
        ids, self.pending = self.pending, set()
        if ids:
            try:
                self.last = await anyio.to_thread.run_sync(self._match, ids)
            except Exception as exc:  # a failed round must not stop later ones
                _log.error("background identity matching failed", records=len(ids), error=type(exc).__name__)
            self.rounds += 1
        if not self.pending:
            self._idle.set()

    def _match(self, ids: set[str]) -> RealtimeReport:
        report = match_new_records(self.store, self.settings, record_ids=ids)
        _log.info(
            "records matched on arrival",
            examined=report.examined,
            joined=report.joined_existing,
            new_profiles=report.new_profiles,
            skipped=report.skipped,
        )
        return report
