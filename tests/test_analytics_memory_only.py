"""Analytics never write personal data to a temporary file, even when memory runs short.

Why: cdp's rule is that plaintext personal data exists only in memory. Its DuckDB
databases are in-memory ones, but DuckDB offloads blocks to ``temp_directory``
(``./.tmp`` by default) under memory pressure, plaintext included. The first test
shows that hazard on DuckDB itself; the others check that every connection cdp opens
(the segment engine's, splink's) refuses to spill, and that running out of memory is
a clear :class:`ResourceExhausted` (exit code 75, HTTP 503), never a silently skipped
training step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from test_identity_levels import _model, _rows

from cdp._exceptions import ResourceExhausted
from cdp._memory_duckdb import is_out_of_memory, memory_only_connection, refusing_to_spill
from cdp.identity import probabilistic
from cdp.segments.engine import SegmentEngine

EMAILS = 3_000_000
LIMIT = "40MB"  # far below what sorting three million e-mail addresses needs


def emails() -> pl.DataFrame:
    return pl.DataFrame({"i": range(EMAILS)}).with_columns(email=pl.format("person{}@example.com", pl.col("i")))


def files_under(folder: Path) -> list[Path]:
    return [Path(root) / name for root, _, names in os.walk(folder) for name in names]


@pytest.fixture
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The working directory, where DuckDB puts its default temporary directory ``.tmp``."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    yield folder


def settings_of(connection: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    row = connection.execute(
        "SELECT current_setting('temp_directory'), current_setting('enable_external_access')"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_default_in_memory_duckdb_spills_plaintext_to_the_working_directory(in_empty_folder: Path) -> None:
    """The hazard (DuckDB's behaviour, not cdp's): if this stops failing to hold, the module's reason changed."""
    connection = duckdb.connect(":memory:", config={"enable_external_access": False})
    connection.execute(f"SET memory_limit = '{LIMIT}'")
    connection.register("people", emails().to_arrow())
    result = connection.execute("SELECT email FROM people ORDER BY hash(i)")
    seen = files_under(in_empty_folder)  # while the sorted result is held: DuckDB deletes them on close
    assert result.fetchone() is not None
    connection.close()
    assert seen and all(p.parent.name == ".tmp" for p in seen)


def test_a_memory_only_connection_fails_instead_of_spilling(in_empty_folder: Path) -> None:
    connection = memory_only_connection()
    assert settings_of(connection) == ("", False)
    with pytest.raises(duckdb.PermissionException):  # and nobody can turn spilling back on
        connection.execute(f"SET temp_directory = '{in_empty_folder}'")
    connection.execute(f"SET memory_limit = '{LIMIT}'")
    connection.register("people", emails().to_arrow())
    with (
        pytest.raises(ResourceExhausted, match="sorting people needs more memory") as raised,
        refusing_to_spill("sorting people"),
    ):
        connection.execute("SELECT email FROM people ORDER BY hash(i)").fetchall()
    assert is_out_of_memory(raised.value)
    assert (raised.value.exit_code, raised.value.http_status) == (75, 503)
    assert files_under(in_empty_folder) == []
    connection.close()


def test_other_errors_pass_through_unchanged() -> None:
    connection = memory_only_connection(external_access=True)
    assert settings_of(connection) == ("", True)
    with pytest.raises(duckdb.CatalogException), refusing_to_spill("a query"):
        connection.execute("SELECT * FROM no_such_table")
    connection.close()


def test_the_segment_engine_queries_in_memory_only(in_empty_folder: Path) -> None:
    from datetime import UTC, datetime

    frame = emails().select(pl.format("p{}", pl.col("i")).alias("profile_id"), "email", "i")
    engine = SegmentEngine(frame, pl.DataFrame(), pl.DataFrame({"profile_id": [], "tag": []}), as_of=datetime.now(UTC))
    try:
        assert settings_of(engine.analytics) == ("", False)
        engine.analytics.register("people", frame.to_arrow())
        engine.analytics.execute(f"SET memory_limit = '{LIMIT}'")
        with pytest.raises(ResourceExhausted, match="segment evaluation"):
            engine._query("SELECT email FROM people ORDER BY hash(i)", [])
    finally:
        engine.close()
    assert files_under(in_empty_folder) == []


def test_splink_runs_on_a_memory_only_connection() -> None:
    linker = probabilistic._linker(_rows(), _model())
    assert settings_of(linker._db_api.duckdb_con) == ("", False)


def test_training_out_of_memory_is_an_error_not_a_skipped_step(
    in_empty_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def starved(**kwargs: Any) -> duckdb.DuckDBPyConnection:
        connection = memory_only_connection(**kwargs)
        connection.execute("SET memory_limit = '1MB'")
        return connection

    rows = _rows() * 200  # the same people many times: every training step has pairs to work on
    rows = [{**r, "unique_id": f"{r['unique_id']}-{n}"} for n, r in enumerate(rows)]
    monkeypatch.setattr(probabilistic, "memory_only_connection", starved)
    with pytest.raises(ResourceExhausted, match="training the identity model"):
        probabilistic.train_model(rows)
    with pytest.raises(ResourceExhausted, match="scoring candidate pairs"):
        probabilistic.predict_pairs(rows, _model(), threshold=0.5)
    assert files_under(in_empty_folder) == []


def test_a_training_step_out_of_memory_is_not_skipped_like_one_without_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """splink wraps DuckDB's error in its own, which training otherwise skips (a step with no pairs)."""
    from splink.internals.exceptions import SplinkException

    real_linker = probabilistic._linker

    def linker_failing_in(step: str, error: BaseException) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            linker = real_linker(*args, **kwargs)

            def fail(*_a: Any, **_k: Any) -> None:
                raise error

            monkeypatch.setattr(linker.training, step, fail)
            return linker

        return make

    def wrapped(cause: BaseException) -> SplinkException:
        try:
            raise SplinkException("Error executing the following SQL") from cause
        except SplinkException as exc:
            return exc

    step = "estimate_u_using_random_sampling"
    monkeypatch.setattr(probabilistic, "_linker", linker_failing_in(step, wrapped(ValueError("no pairs"))))
    assert probabilistic.train_model(_rows())["cdp"]["records"] == len(_rows())  # skipped: training goes on
    out_of_memory = wrapped(duckdb.OutOfMemoryException("could not allocate block"))
    monkeypatch.setattr(probabilistic, "_linker", linker_failing_in(step, out_of_memory))
    with pytest.raises(ResourceExhausted, match="training the identity model"):
        probabilistic.train_model(_rows())
