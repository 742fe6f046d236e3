"""Sharing one large read between this process and a forked child, so it uses two cores.

Why this module exists: after the SQL fetch, a bulk read of profiles is per-person
Python work (unwrapping each person's data key, AES-GCM per field, survivorship,
masking) that holds the GIL, so threads cannot share it. For reads of many
profiles (exports, segment snapshots, the CLI) the rows already fetched are cut
into chunks, and this process and a forked child take chunks in turn until none
is left; the child's finished chunks come back through a pipe.

Why chunks taken in turn and not two fixed halves: the two processes do not run
at the same speed. The child pays a copy-on-write fault for every page of the
parent's memory it touches, and on a shared machine either process may lose its
core for a while; with fixed halves the faster one then waits for the other
(measured: up to a third of the parallel part). Chunks are handed out through a
pipe filled before the fork, each ``read`` taking exactly one chunk number, so
neither process can take a chunk twice and no lock is held that a dying child
could leave locked.

Why a child may stream its chunks (``stream=True``: the profile reads, :func:`map_split`): sending every
result at the end means the child pickles them all after its last chunk, and this
process waits for that and then unpickles them all, a serial tail of ~0.1 s at
100,000 profiles while the other core idles. A streaming child sends each chunk
as it finishes it into an enlarged pipe, and a thread of this process (started
after the fork) loads it meanwhile, so at the end only the last chunk is still
on its way. The attributes' forked counts do not stream: their results are a
few large arrays, which a thread would read a pipe's worth at a time, each
waiting for the GIL that numpy's counting holds.

Privacy: the child writes nothing anywhere and never touches the database
connection it inherits; the plaintext it produced crosses only the pipe (memory,
never a file), and is exactly what the read returns anyway (masked per policy).
Robustness: if the child cannot start, dies, or fails, this process does the
chunks the child did not hand back, so an error the work raises is raised here
as it would be without the split.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

PARALLEL_MIN_ITEMS = 20_000  # below this a fork and the pipe cost more than the second core saves
CHUNKS = 48  # the most the slower process can lag behind at the end is one chunk (~2 % of the work)
_TOKEN = 2  # bytes per chunk number in the pipe: one read() of a pipe takes exactly this many
_MOST_CHUNKS = 4096  # their numbers (8 KiB) fit in a pipe's buffer, so filling it never blocks
_STREAM_PIPE_BYTES = 1 << 20  # a streaming child's pipe: Linux's default ceiling for unprivileged processes
outcome = {"last": "none"}  # how the last call ran: "single", "child" or "redone" (for tests and benchmarks)


def can_fork() -> bool:
    """Forking is safe only while this process runs a single thread (a lock held by another thread
    would stay locked forever in the child)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def will_share(count: int, min_items: int | None = None) -> bool:
    """Whether :func:`map_split` of ``count`` items would share them with a child."""
    least = PARALLEL_MIN_ITEMS if min_items is None else min_items
    return count >= max(least, 2) and can_fork() and not os.environ.get("CDP_NO_PARALLEL_READS")


def _take(chunk_numbers: int) -> int | None:
    """The next chunk number no process has taken yet, or None when all are taken."""
    token = os.read(chunk_numbers, _TOKEN)
    return int.from_bytes(token, "big") if len(token) == _TOKEN else None


def _chunks(count: int, parts: int) -> list[tuple[int, int]]:
    size = -(-count // parts)
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _child(
    work: Callable[[Sequence[Any]], Any],
    items: Sequence[Any],
    bounds: list[tuple[int, int]],
    chunk_numbers: int,
    pipe: Connection,
    parents_end: Connection,
    stream: bool,
) -> None:
    # The child's copy of the receiving end, closed first: with it open, a parent killed before it
    # reads would leave this process blocked in ``send_bytes`` forever (a reader still exists).
    parents_end.close()
    done: dict[int, Any] = {}
    try:
        while (number := _take(chunk_numbers)) is not None:
            start, end = bounds[number]
            done[number] = work(items[start:end])
            if stream:
                _hand_back(pipe, {number: done.pop(number)})
    except BaseException:  # noqa: S110 - the failed chunk is missing below: the parent redoes it, raising its error
        pass
    try:
        if not stream:
            _hand_back(pipe, done)
    except BaseException:  # noqa: S110 - the parent is gone (killed, or it cancelled): nobody wants the results
        pass
    finally:
        pipe.close()


def _hand_back(pipe: Connection, results: dict[int, Any]) -> None:
    """Send ``results`` (chunk number -> result) to the parent; results that cannot be pickled are
    not sent (the parent redoes their chunks)."""
    try:
        payload = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # an unpicklable result: missing, so redone by the parent
        return
    pipe.send_bytes(payload)


def _enlarge_pipe(end: Connection) -> None:
    """Give the pipe of ``end`` :data:`_STREAM_PIPE_BYTES` of buffer where the system can (Linux);
    elsewhere it keeps its size, and the child only waits a little more often for the reader."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        import fcntl  # not on Windows (where no child is forked anyway); F_SETPIPE_SZ is Linux's

        fcntl.fcntl(end.fileno(), fcntl.F_SETPIPE_SZ, _STREAM_PIPE_BYTES)


def _receive(receiving: Connection, done: dict[int, Any]) -> None:
    """Collect a streaming child's chunks as they come (on a thread of the parent), until it closes the pipe."""
    while True:
        try:
            payload = receiving.recv_bytes()
        except (EOFError, OSError):  # the child is done, died, or was killed: what is missing is redone
            return
        try:
            done.update(pickle.loads(payload))  # noqa: S301 - our own child's bytes
        except Exception:  # a result that does not load back: the parent redoes what is missing
            return


class SharedWork(Generic[Item, Result]):
    """``work`` of consecutive chunks of ``items``, shared between this process and a forked child
    from :meth:`start` on; :meth:`finish` takes the chunks left, collects the child's and returns
    every result in item order (see :func:`map_split`).

    Between the two calls this process may do other work (a read fetching its next rows from the
    database while the child already assembles the first ones); the child only takes chunks.
    """

    def __init__(
        self,
        work: Callable[[Sequence[Item]], Result],
        items: Sequence[Item],
        *,
        min_items: int | None = None,
        chunks: int = CHUNKS,
        stream: bool = False,
    ) -> None:
        self._work, self._items = work, items
        self._min_items = PARALLEL_MIN_ITEMS if min_items is None else min_items
        self._chunks = chunks
        self._stream = stream
        self._process: Any = None
        self._receiver: threading.Thread | None = None
        self._theirs: dict[int, Any] = {}

    def start(self) -> SharedWork[Item, Result]:
        """Fork the child, if the items are enough and forking is safe; it starts taking chunks."""
        items = self._items
        if not will_share(len(items), self._min_items):
            return self
        self._bounds = _chunks(len(items), max(2, min(self._chunks, len(items), _MOST_CHUNKS)))
        take_end, fill_end = os.pipe()
        try:
            # Every chunk number is in the pipe before the fork, and its write end is closed, so an
            # empty pipe reads as end of file: nothing left to take.
            os.write(fill_end, b"".join(n.to_bytes(_TOKEN, "big") for n in range(len(self._bounds))))
        finally:
            os.close(fill_end)
        context: Any = multiprocessing.get_context("fork")  # typeshed's BaseContext lacks Process
        receiving, sending = context.Pipe(duplex=False)
        if self._stream:  # room for several chunks, so the child seldom waits for this process's reader
            _enlarge_pipe(receiving)
        try:
            process = context.Process(
                target=_child,
                args=(self._work, items, self._bounds, take_end, sending, receiving, self._stream),
                name="cdp-read-share",
                daemon=True,
            )
            process.start()
        except OSError:
            receiving.close()
            sending.close()
            os.close(take_end)
            return self
        sending.close()  # the child holds the only sending end: its death reads as EOF here
        self._process, self._take_end, self._receiving = process, take_end, receiving
        if self._stream:  # started after the fork: the child must not inherit a thread
            self._receiver = threading.Thread(
                target=_receive, args=(receiving, self._theirs), name="cdp-read-share-receiver", daemon=True
            )
            self._receiver.start()
        return self

    def cancel(self) -> None:
        """Stop the child without waiting for its chunks (the caller is failing anyway)."""
        process, self._process = self._process, None
        if process is not None:
            os.close(self._take_end)
            process.kill()
            process.join()
            self._join_receiver()  # the child's death ends its read (EOF) before the pipe is closed
            self._receiving.close()

    def _join_receiver(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.join()

    def finish(self) -> list[Result]:
        """Every chunk's result, in item order (the child's, and this process's)."""
        process, work, items = self._process, self._work, self._items
        if process is None:
            outcome["last"] = "single"
            return [work(items)]
        bounds, take_end, receiving = self._bounds, self._take_end, self._receiving
        done: dict[int, Any] = {}
        try:
            while (number := _take(take_end)) is not None:
                start, end = bounds[number]
                done[number] = work(items[start:end])
            if self._stream:
                self._join_receiver()  # returns when the child has closed its end (done or dead)
                theirs = self._theirs
            else:
                try:
                    theirs = pickle.loads(receiving.recv_bytes())  # noqa: S301 - our own child's bytes
                except (EOFError, OSError):
                    theirs = {}
        finally:
            os.close(take_end)
            if not self._stream:  # a child blocked sending to nobody (this process failed) fails at once
                receiving.close()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
            if self._stream:  # its thread reads until the child is gone: only then is the pipe closed
                self._join_receiver()
                receiving.close()
        done.update(theirs)
        missing = [number for number in range(len(bounds)) if number not in done]
        outcome["last"] = "redone" if missing else "child"
        for number in missing:  # the child failed or died: its chunks are done here (raising its error here)
            start, end = bounds[number]
            done[number] = work(items[start:end])
        return [done[number] for number in range(len(bounds))]


def map_split(
    work: Callable[[Sequence[Item]], Result],
    items: Sequence[Item],
    *,
    min_items: int | None = None,
    chunks: int = CHUNKS,
) -> list[Result]:
    """``[work(items)]``, or ``work`` of consecutive chunks of ``items`` (results in item order),
    the chunks shared between this process and a forked child, when there are at least
    ``min_items`` items and forking is safe.

    ``work`` must only compute from memory (no database, no files) and return a picklable result.
    ``min_items`` defaults to :data:`PARALLEL_MIN_ITEMS`; ``CDP_NO_PARALLEL_READS=1`` turns the split off.
    The child streams each chunk's result back as it finishes it (see the module's docstring).
    """
    return SharedWork(work, items, min_items=min_items, chunks=chunks, stream=True).start().finish()
