"""DuckDB connections that keep everything in memory, their overflow included.

Why this module exists: cdp's analytics hold personal data in DuckDB (the segment
snapshot taken through the access layer; splink's identity model over the decrypted
identifiers), always in an in-memory database. But an in-memory DuckDB is not
memory-only: under memory pressure it offloads blocks to its ``temp_directory``, by
default ``.tmp`` in the working directory, as plain pages (measured with DuckDB 1.5:
a sort of 3M generated e-mail addresses under a 50 MB limit left
``.tmp/duckdb_temp_storage_*.tmp`` files holding them, with external access
disabled). cdp's rule is that plaintext personal data exists only in memory, so every
DuckDB connection cdp opens comes from :func:`memory_only_connection`, which turns
the offloading off, and work that does not fit fails with
:class:`~cdp._exceptions.ResourceExhausted` (see :func:`refusing_to_spill`) instead of
writing pages to disk. DuckDB's own memory limit (80 % of RAM by default) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from cdp._exceptions import ResourceExhausted

__all__ = ["is_out_of_memory", "memory_only_connection", "refusing_to_spill"]


def memory_only_connection(*, external_access: bool = False, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection that never writes a temporary file.

    ``external_access`` False (the default) also refuses every file and network access
    from SQL (``COPY``, ``read_csv``, extensions) and any later change of ``temp_directory``,
    for the life of the connection.
    """
    config: dict[str, str | bool | int | float | list[str]] = {"temp_directory": ""}
    if threads is not None:
        config["threads"] = threads
    duck = duckdb.connect(":memory:", config=config)
    if not external_access:
        # After the connection is made: DuckDB refuses ``temp_directory`` in the same config once
        # external access is off. Once off, neither can be changed back by SQL.
        duck.execute("SET enable_external_access = false")
    return duck


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error``, or one it was raised from (splink wraps DuckDB's errors), is DuckDB's."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, duckdb.OutOfMemoryException):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def refusing_to_spill(work: str) -> Iterator[None]:
    """Run DuckDB ``work`` (named in the error), turning its out-of-memory error into
    :class:`~cdp._exceptions.ResourceExhausted` with what an operator can do."""
    try:
        yield
    except ResourceExhausted:
        raise
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        raise ResourceExhausted(
            f"{work} needs more memory than DuckDB may use in this process, and cdp does not let it spill "
            "personal data to a temporary file; run it with more memory, on fewer rows at a time, or on "
            "a larger backend (splink's Spark backend, the warehouse)"
        ) from exc
