"""Splitting one large read between this process and a forked child, so it uses two cores.

Why this module exists: after the SQL fetch, a bulk read of profiles is per-person
Python work (unwrapping each person's data key, AES-GCM per field, survivorship,
masking) that holds the GIL, so threads cannot share it. For reads of many
profiles (exports, segment snapshots, the CLI) the rows already fetched are split
in two: a forked child assembles the second half while this process assembles the
first, and the child's finished rows come back through a pipe.

Privacy: the child writes nothing anywhere and never touches the database
connection it inherits; the plaintext it produced crosses only the pipe (memory,
never a file), and is exactly what the read returns anyway (masked per policy).
Robustness: if the child cannot start, dies, or fails, this process assembles the
second half itself, so an error the work raises is raised here as it would be
without the split.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

PARALLEL_MIN_ITEMS = 20_000  # below this a fork and the pipe cost more than the second core saves
outcome = {"last": "none"}  # how the last call ran: "single", "child" or "redone" (for tests and benchmarks)


def can_fork() -> bool:
    """Forking is safe only while this process runs a single thread (a lock held by another thread
    would stay locked forever in the child)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _child(work: Callable[[Sequence[Any]], Any], items: Sequence[Any], pipe: Connection) -> None:
    try:
        payload = pickle.dumps(("ok", work(items)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # the parent redoes this half and raises whatever it raises
        payload = pickle.dumps(("failed", None))
    try:
        pipe.send_bytes(payload)
    finally:
        pipe.close()


def map_in_halves(
    work: Callable[[Sequence[Item]], Result], items: Sequence[Item], *, min_items: int | None = None
) -> list[Result]:
    """``[work(items)]``, or ``[work(first half), work(second half)]`` with the second half run in a
    forked child when there are at least ``min_items`` items and forking is safe.

    ``work`` must only compute from memory (no database, no files) and return a picklable result.
    ``min_items`` defaults to :data:`PARALLEL_MIN_ITEMS`; ``CDP_NO_PARALLEL_READS=1`` turns the split off.
    """
    min_items = PARALLEL_MIN_ITEMS if min_items is None else min_items
    if len(items) < max(min_items, 2) or not can_fork() or os.environ.get("CDP_NO_PARALLEL_READS"):
        outcome["last"] = "single"
        return [work(items)]
    middle = len(items) // 2
    context: Any = multiprocessing.get_context("fork")  # typeshed's BaseContext lacks Process
    receiving, sending = context.Pipe(duplex=False)
    try:
        process = context.Process(
            target=_child, args=(work, items[middle:], sending), name="cdp-read-half", daemon=True
        )
        process.start()
    except OSError:
        receiving.close()
        sending.close()
        outcome["last"] = "single"
        return [work(items)]
    sending.close()  # the child holds the only sending end: its death reads as EOF here
    try:
        first = work(items[:middle])
        try:
            status, second = pickle.loads(receiving.recv_bytes())  # noqa: S301 - our own child's bytes
        except (EOFError, OSError):
            status, second = "failed", None
    finally:
        receiving.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
    outcome["last"] = "child" if status == "ok" else "redone"
    if status != "ok":
        second = work(items[middle:])
    return [first, second]
