"""Some of the attributes' per-profile counts computed in a forked child, so they use the other core.

Why this module exists: the computed attributes are numpy ``bincount`` and
``ufunc.at`` calls over every event, and those hold the GIL, so a thread
cannot share them. The three largest that need every event row (distinct
channels, category browsing counts, first and last seen: ~0.7 s of ~1.7 s at
10M events) are independent of the others, so a forked child computes them
from the parent's arrays (shared copy-on-write, nothing copied) while this
process computes the rest; their results come back through a pipe.

The child runs only numpy on arrays it inherited (no Polars: its thread pool
does not exist in a forked child); it writes nothing anywhere, and what crosses
the pipe is counts per profile position (no identifiers). It is forked only
while this process runs a single thread (:func:`cdp.access._parallel.can_fork`)
and for enough events to repay the fork; otherwise, or if the child dies or
fails, this process computes what is missing itself (:class:`SharedWork`),
with the same functions on the same arrays, so the results are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cdp.access._parallel import SharedWork

FORK_MIN_EVENTS = 2_000_000  # below this, forking and the pipe cost more than the other core saves


def _run(tasks: Sequence[Callable[[], Any]]) -> list[Any]:
    return [task() for task in tasks]


class ForkedCounts:
    """``tasks`` (numpy only, from memory) started in a forked child; :meth:`results` returns them in order.

    Between :meth:`start` and :meth:`results` this process does its other work; it must
    call :meth:`results` or :meth:`cancel` (``with`` does the latter on an error).
    """

    def __init__(self, tasks: Sequence[Callable[[], Any]], *, events: int) -> None:
        least = 2 if events >= FORK_MIN_EVENTS else len(tasks) + 1  # more than there are: never forks
        self._shared: SharedWork[Callable[[], Any], list[Any]] = SharedWork(
            _run, list(tasks), min_items=least, chunks=len(tasks)
        )
        self._finished = False  # after ``finish`` the pipes are closed: nothing is left to cancel

    def start(self) -> ForkedCounts:
        self._shared.start()
        return self

    def results(self) -> list[Any]:
        """Each task's result, in order (the child's, and any it did not hand back computed here)."""
        self._finished = True
        return [result for part in self._shared.finish() for result in part]

    def cancel(self) -> None:
        """Kill the child, if it is still wanted (an error before :meth:`results`)."""
        if not self._finished:
            self._finished = True
            self._shared.cancel()

    def __enter__(self) -> ForkedCounts:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.cancel()
