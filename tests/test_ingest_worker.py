"""The ingest worker process stores exactly what the in-process path stores, and reports its errors.

Why: for large files the runner reads, normalises and prepares records in a
forked child (``cdp.connectors._worker``) and only stores them itself. That
must change nothing that is stored: the same records, blind indexes, events,
consents and quarantine entries with the same reasons. Forking is done only
from a single-threaded process, so the worker runs in a subprocess here (the
test process may hold threads), against its own data directory.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from test_ingest_crash import environment, run_script, write_calls

from cdp.access import CustomerStore, open_store
from cdp.access._rows import Ready
from cdp.connectors._worker import PIPE_BYTES, Batch, _widen
from cdp.connectors.runner import IngestRunner, make_connector
from cdp.settings import Settings

RUN = """
import json, sys
from cdp.access import CustomerStore, open_store
from cdp.connectors.runner import IngestRunner, make_connector
from cdp.settings import load_settings

settings = load_settings()
store = open_store(settings, migrate=True)
try:
    stats = IngestRunner(store, settings).run(make_connector(settings, sys.argv[1], json.loads(sys.argv[2])), parallel=True)
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"read": stats.read, "accepted": stats.accepted, "rejected": stats.rejected,
                      "reasons": stats.reasons, "worker": stats.worker}))
store.close()
"""


def run_in_worker(settings: Settings, connector: str, config: dict[str, Any], cwd: Path) -> dict[str, Any]:
    result: dict[str, Any] = run_script(RUN, [connector, json.dumps(config)], environment(settings, 700), cwd)
    return result


def contents(engine: Engine) -> dict[str, Any]:
    """What was stored, in terms that do not depend on the keys or the record ids."""
    with engine.connect() as connection:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return sorted((tuple(r) for r in connection.execute(text(sql))), key=repr)

        return {
            "records": rows(
                "SELECT source_record_id, kind, occurred_at, postcode, city, state, country, gender,"
                " email_enc IS NULL, phone_enc IS NULL, given_name_enc IS NULL, user_id_enc IS NULL FROM records"
            ),
            "indexes": rows(
                "SELECT r.source_record_id, b.kind FROM blind_indexes b JOIN records r ON r.id = b.record_id"
            ),
            "events": rows(
                "SELECT r.source_record_id, e.event_type, e.event_name, e.occurred_at, e.revenue,"
                " e.anonymous_key IS NULL, e.user_key IS NULL FROM events e JOIN records r ON r.id = e.record_id"
            ),
            "consents": rows(
                "SELECT purpose, status, source, jurisdiction, recorded_at, subject_key IS NULL,"
                " json_remove(evidence, '$.ip_hash'), json_type(evidence, '$.ip_hash') FROM consents"
            ),
            "quarantine": rows("SELECT position, field, reason FROM quarantine"),
            "people": connection.execute(text("SELECT count(DISTINCT key_id) FROM records")).scalar(),
        }


def sqlite_settings(folder: Path) -> Settings:
    """Both runs on SQLite, so that stored values compare as the same types (the crash test runs the
    worker against CDP_TEST_DATABASE_URL too)."""
    return Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{(folder / 'cdp.sqlite').as_posix()}",
        keys_dir=folder / "keys",
    )


def test_worker_process_stores_the_same_as_in_process(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    good, bad = write_calls(path, 9_000)
    assert path.stat().st_size > 1_000_000
    config = {"path": str(path)}
    settings = sqlite_settings(tmp_path / "here")
    store = open_store(settings, migrate=True)
    here = IngestRunner(store, settings).run(make_connector(settings, "website", config), parallel=False)
    assert not here.worker

    other = sqlite_settings(tmp_path / "other")
    there = run_in_worker(other, "website", config, tmp_path)
    assert there["worker"], "the ingest did not use a worker process"
    assert (there["read"], there["accepted"], there["rejected"]) == (here.read, here.accepted, here.rejected)
    assert there["reasons"] == here.reasons
    assert (here.accepted, here.rejected) == (len(good), len(bad))

    engine = create_engine(other.database_url)
    try:
        assert contents(engine) == contents(store.engine)
    finally:
        engine.dispose()
        store.close()


def test_worker_errors_reach_the_caller(tmp_path: Path, settings: Settings) -> None:
    result = run_in_worker(settings, "website", {"path": str(tmp_path / "missing.jsonl")}, tmp_path)
    assert result["error"] == "UnknownSourceError"
    assert "missing.jsonl" in result["message"]


def test_batches_travel_packed_and_unpack_to_the_same_records() -> None:
    records: list[Ready] = [("r_1", "web", "calls", "m1", "k1", None, "event", b"{}", None, (None,), (), [], [], [])]
    batch = Batch(records, [{"position": "f:1"}], {"f": {"offset": 10}}, read=2)
    packed = batch.pack()
    assert packed.records == [] and packed.packed is not None
    assert packed.ready() == records == batch.ready()
    assert (packed.rejects, packed.state, packed.read) == (batch.rejects, batch.state, batch.read)
    assert packed.marshalled


class Text(str):
    """A str subclass: marshal refuses it (it would come back a plain str), so the batch is pickled."""


def _types(value: Any) -> Any:
    """``value``'s structure with each leaf replaced by its exact type (equality alone would let 1 == 1.0 == True)."""
    if isinstance(value, list | tuple):
        return (type(value), [_types(v) for v in value])
    return type(value)


def test_rows_made_for_sqlite_travel_marshalled_and_others_pickled(store: CustomerStore) -> None:
    from decimal import Decimal

    from test_ingest_rows import _record

    converted = store.row_maker(store.engine.dialect)
    made = converted.make([_record(1, email="a@example.org"), _record(2)])
    packed = Batch(made, [], {}).pack()
    assert packed.marshalled == converted.converted  # on PostgreSQL the rows hold datetimes: pickled
    assert packed.ready() == made and _types(packed.ready()) == _types(made)
    plain = Batch(store.row_maker().make([_record(3)]), [], {}).pack()  # datetimes: pickled
    assert not plain.marshalled and _types(plain.ready()) == _types(
        Batch(store.row_maker().make([_record(3)]), [], {}).records
    )
    for odd in (Decimal("1.5"), Text("x"), datetime(2026, 1, 1, tzinfo=UTC), 2**70, -0.0, "\ud800"):
        rows: list[Ready] = [("r_1", odd, 1, 1.0, True, None, b"", (), [])]
        back = Batch(rows, [], {}).pack()
        assert back.ready() == rows and _types(back.ready()) == _types(rows), odd
    # marshal writes any bytes-like value as bytes, which the drivers store as the same BLOB
    assert Batch([(bytearray(b"x"),)], [], {}).pack().ready() == [(b"x",)]


def test_worker_pipe_is_widened() -> None:
    receiving, sending = multiprocessing.Pipe(duplex=False)
    try:
        _widen(sending)
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert fcntl.fcntl(receiving.fileno(), fcntl.F_GETPIPE_SZ) >= min(limit, PIPE_BYTES)
    finally:
        receiving.close()
        sending.close()


def test_worker_rows_of_demo_web_calls_equal_in_process_rows(tmp_path: Path) -> None:
    """Demo website calls carry consents (with evidence and a hashed IP), identities and events: the
    rows the worker converts for SQLite store what the in-process path stores."""
    from cdp.demo import generate

    made = generate(tmp_path / "demo", customers=1200, seed=7)
    assert made.web.stat().st_size > 1_000_000
    config = {"path": str(made.web)}
    settings = sqlite_settings(tmp_path / "here")
    store = open_store(settings, migrate=True)
    here = IngestRunner(store, settings).run(make_connector(settings, "website", config), parallel=False)
    other = sqlite_settings(tmp_path / "other")
    there = run_in_worker(other, "website", config, tmp_path)
    assert there["worker"] and not here.worker
    assert (there["read"], there["accepted"], there["rejected"]) == (here.read, here.accepted, here.rejected)
    engine = create_engine(other.database_url)
    try:
        stored = contents(store.engine)
        assert len(stored["consents"]) > 100 and any(row[6] for row in stored["consents"])
        assert contents(engine) == stored
    finally:
        engine.dispose()
        store.close()


def test_fewer_collections_freezes_and_restores_once_for_nested_blocks() -> None:
    import gc

    from cdp._gc import BULK_GC_THRESHOLDS, fewer_collections

    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    try:
        with fewer_collections():
            assert gc.get_threshold() == BULK_GC_THRESHOLDS
            assert gc.get_freeze_count() > 0
            with fewer_collections():
                assert gc.get_threshold() == BULK_GC_THRESHOLDS
            assert gc.get_threshold() == BULK_GC_THRESHOLDS, "an inner block undid the outer one's settings"
            assert gc.get_freeze_count() > 0
            raise KeyError("boom")
    except KeyError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_fewer_collections_keeps_a_freeze_made_before_it() -> None:
    import gc

    from cdp._gc import BULK_GC_THRESHOLDS, fewer_collections

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with fewer_collections():
            assert gc.get_threshold() == BULK_GC_THRESHOLDS
        assert gc.get_freeze_count() > frozen // 2, "the block undid a freeze it did not make"  # (a few freed)
    finally:
        gc.unfreeze()


def test_an_ingest_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "calls.jsonl"
    write_calls(path, 500)
    settings = sqlite_settings(tmp_path / "data")
    store = open_store(settings, migrate=True)
    before = gc.get_threshold()
    try:
        IngestRunner(store, settings).run(make_connector(settings, "website", {"path": str(path)}), parallel=False)
    finally:
        store.close()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
