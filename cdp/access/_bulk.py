"""Bulk inserts compiled once per table and dialect, run with the driver's ``executemany``.

Why this module exists: ingestion and the identity match keys insert hundreds of
thousands of rows; SQLAlchemy's per-row parameter processing of an ``insert()``
with a list of dicts cost more than SQLite itself. :func:`bulk_insert` compiles
the statement once, applies only the bind processors a column type really needs
(with a faster equivalent for SQLite's DATETIME text, checked against
SQLAlchemy's own on sample values) and hands plain tuples to the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, LargeBinary, Table, insert

__all__ = ["BulkInsert", "bulk_insert", "compiled_insert"]


@dataclass(frozen=True)
class BulkInsert:
    """One table's INSERT, compiled once per dialect, run with the driver's executemany."""

    sql: str
    names: tuple[str, ...]  # bind names, in the statement's parameter order
    order: tuple[int, ...]  # for each bind, the index of its value in the caller's row
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (row index, bind processor) where the type has one
    named: bool
    columns: tuple[str, ...] = ()  # the caller's column order

    def run(self, connection: Connection, rows: Sequence[Sequence[Any]], *, converted: bool = False) -> None:
        """Insert ``rows`` (tuples in the column order the statement was made for).

        ``converted``: the rows went through :meth:`convert_row` already (in an ingest worker).
        """
        if not rows:
            return
        if self.processors and not converted:
            rows = [self.convert_row(row) for row in rows]
        order = self.order
        if self.named:
            pairs = tuple(zip(self.names, order, strict=True))
            connection.exec_driver_sql(self.sql, [{n: row[i] for n, i in pairs} for row in rows])
        elif order == tuple(range(len(order))):  # the statement takes the columns in the caller's order
            connection.exec_driver_sql(self.sql, rows if isinstance(rows, list) else list(rows))
        else:
            connection.exec_driver_sql(self.sql, [tuple([row[i] for i in order]) for row in rows])

    def convert_row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """``row`` with each value the driver cannot take as it is turned into the form it can."""
        if not self.processors:
            return tuple(row)
        values = list(row)
        for i, process in self.processors:
            if values[i] is not None:
                values[i] = process(values[i])
        return tuple(values)

    def processor(self, column: str) -> Callable[[Any], Any] | None:
        """The bind processor of one column (None: its values go to the driver as they are)."""
        return self.processor_of.get(column)

    @property
    def processor_of(self) -> dict[str, Callable[[Any], Any]]:
        return {self.columns[i]: process for i, process in self.processors}


def _fast_processor(process: Callable[[Any], Any], dialect_name: str, type_: Any) -> Callable[[Any], Any]:
    """A faster equivalent of the bind processor ``process``, where there is one.

    SQLite stores a DATETIME as ``YYYY-MM-DD HH:MM:SS.ffffff`` (any offset dropped), which
    SQLAlchemy builds with ``%``-formatting, a third of the bulk-insert time; ``isoformat`` makes
    the same text in C. It is used only after checking that both agree on sample values.
    """
    if dialect_name != "sqlite" or not isinstance(type_, DateTime):
        return process

    # The last value and its text (a batch's rows share one received_at), swapped as one tuple so
    # that threads sharing this processor never see a value paired with another value's text.
    last: list[tuple[Any, Any]] = [(None, None)]

    def fast(value: Any) -> Any:
        seen, text = last[0]
        if value is seen:
            return text
        if type(value) is datetime:
            text = value.isoformat(" ", "microseconds")[:26]
            last[0] = (value, text)
            return text
        return process(value)

    samples = (
        datetime(2026, 12, 2, 4, 5, 6, 789, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2200, 12, 31, 23, 59, 59, 999_999),
    )
    if all(fast(value) == process(value) for value in samples):
        return fast
    return process  # pragma: no cover - a custom storage format


_COMPILED: dict[tuple[str, str, str, tuple[str, ...]], BulkInsert] = {}


def bulk_insert(connection: Connection, table: Table, columns: tuple[str, ...]) -> BulkInsert:
    """The compiled INSERT of ``columns`` into ``table`` for this connection's dialect (cached)."""
    return compiled_insert(connection.dialect, table, columns)


def compiled_insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> BulkInsert:
    """The compiled INSERT of ``columns`` into ``table`` for ``dialect`` (cached)."""
    cache_key = (dialect.name, str(dialect.paramstyle), table.name, columns)
    found = _COMPILED.get(cache_key)
    if found is not None:
        return found
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    named = compiled.positiontup is None
    names = tuple(columns) if named else tuple(compiled.positiontup or ())
    if sorted(names) != sorted(columns):  # pragma: no cover - a dialect that renames bind parameters
        raise RuntimeError(f"cannot bulk-insert into {table.name}: unexpected bind names {names}")
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(columns):
        type_ = table.c[name].type
        if isinstance(type_, LargeBinary):
            continue  # bytes go to every supported driver as they are; skip the per-value wrapper
        process = type_.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((index, _fast_processor(process, dialect.name, type_)))
    found = BulkInsert(
        str(compiled), names, tuple(columns.index(n) for n in names), tuple(processors), named, tuple(columns)
    )
    _COMPILED[cache_key] = found
    return found
