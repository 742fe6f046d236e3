"""Several sources in one run (``IngestRunner.run_many``): what one run per source stores, pipelined.

Why: ``cdp demo`` (and the files benchmark) ingest their three files in one run: one worker
process reads them one after another while one writer stores their batches, so that neither
process waits for the other between files. That must store exactly what three separate runs
store (records, indexes, events, consents, quarantine), keep each source's transactions and
cursor its own, record each file as ingested, and fail as a single run fails.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from test_ingest_crash import environment, kill_after, run_script, write_calls
from test_ingest_worker import contents, sqlite_settings

from cdp._exceptions import ConfigurationError, UnknownSourceError
from cdp.access import CustomerStore, open_store
from cdp.access.context import connector_context
from cdp.connectors._worker import PARALLEL_MIN_BYTES, Batch
from cdp.connectors.runner import IngestRunner, RunStats, _Sink, _Writer, make_connector
from cdp.settings import Settings

RUN_MANY = """
import json, sys
from cdp.access import open_store
from cdp.access.context import connector_context
from cdp.connectors.runner import IngestRunner, make_connector
from cdp.settings import load_settings

settings = load_settings()
store = open_store(settings, migrate=True)
sources = json.loads(sys.argv[1])
try:
    runs = IngestRunner(store, settings).run_many(
        [make_connector(settings, name, config) for name, config in sources], parallel=True
    )
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps([{"source": s.source, "read": s.read, "accepted": s.accepted, "rejected": s.rejected,
                       "duplicates": s.duplicates, "reasons": s.reasons, "worker": s.worker,
                       "skipped": s.skipped_file, "seconds": s.seconds} for s in runs]))
store.close()
"""


def demo_sources(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """The demo's three files, each with a line the connector must quarantine."""
    from cdp.demo import generate

    made = generate(folder, customers=1200, seed=7)
    with made.web.open("a", encoding="utf-8") as handle:
        handle.write('{"type": "track", "messageId": "broken", oops\n')
    with made.pos.open("a", encoding="utf-8") as handle:
        handle.write("txn_ragged,CN013\n")
    with made.survey.open("a", encoding="utf-8") as handle:
        handle.write("R_bad,not-a-time,Pat,pat@example.org,,US,,,,eleven,4,,,yes\n")
    return [
        ("website", {"path": str(made.web)}),
        ("pos", {"path": str(made.pos), "region_from_store_id": True}),
        ("survey", {"path": str(made.survey)}),
    ]


def run_many_in_subprocess(settings: Settings, sources: list[tuple[str, dict[str, Any]]], cwd: Path) -> Any:
    return run_script(RUN_MANY, [json.dumps(sources)], environment(settings, batch_size=700), cwd)


def counted(stats: RunStats) -> dict[str, Any]:
    return {
        "source": stats.source,
        "read": stats.read,
        "accepted": stats.accepted,
        "rejected": stats.rejected,
        "duplicates": stats.duplicates,
        "reasons": stats.reasons,
    }


def test_one_run_of_three_sources_in_a_worker_stores_what_three_runs_store(tmp_path: Path) -> None:
    sources = demo_sources(tmp_path / "demo")
    settings = sqlite_settings(tmp_path / "here")
    store = open_store(settings, migrate=True)
    runner = IngestRunner(store, settings)
    separately = [runner.run(make_connector(settings, name, config), parallel=False) for name, config in sources]
    assert all(s.rejected >= 1 and s.accepted > 100 for s in separately)

    other = sqlite_settings(tmp_path / "other")
    together = run_many_in_subprocess(other, sources, tmp_path)
    assert all(run["worker"] for run in together), "the run did not use a worker process"
    assert [{k: run[k] for k in counted(separately[0])} for run in together] == [counted(s) for s in separately]
    assert all(run["seconds"] > 0 for run in together)
    engine = create_engine(other.database_url)
    try:
        assert contents(engine) == contents(store.engine)
        with engine.connect() as connection:
            recorded = connection.execute(text("SELECT source FROM ingested_files ORDER BY source")).scalars().all()
        assert recorded == ["pos", "survey", "website"]
    finally:
        engine.dispose()
        store.close()
    again = run_many_in_subprocess(other, sources, tmp_path)
    assert [(run["skipped"], run["read"]) for run in again] == [(True, 0)] * 3


def test_one_run_in_process_stores_what_three_runs_store(tmp_path: Path) -> None:
    sources = demo_sources(tmp_path / "demo")
    here, there = sqlite_settings(tmp_path / "here"), sqlite_settings(tmp_path / "there")
    separate_store, shared_store = open_store(here, migrate=True), open_store(there, migrate=True)
    try:
        runner = IngestRunner(separate_store, here)
        separately = [runner.run(make_connector(here, name, config), parallel=False) for name, config in sources]
        together = IngestRunner(shared_store, there).run_many(
            [make_connector(there, name, config) for name, config in sources], parallel=False
        )
        assert not any(s.worker for s in together)
        assert [counted(s) for s in together] == [counted(s) for s in separately]
        assert contents(shared_store.engine) == contents(separate_store.engine)
        with shared_store.engine.connect() as connection:
            requests = connection.execute(
                text(
                    "SELECT actor, count(DISTINCT request_id) FROM audit_log WHERE actor LIKE 'connector:%' GROUP BY actor"
                )
            ).all()
        # Each source's run (look-ups, every transaction, its file recorded) is one request in the audit log.
        assert sorted(requests) == [("connector:pos", 1), ("connector:survey", 1), ("connector:website", 1)]
    finally:
        separate_store.close()
        shared_store.close()


class _RecordingStore:
    """What the writer asks of the store, one call per transaction; the first call waits for a signal."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.release = threading.Event()

    def ingest_ready(self, ctx: Any, records: list[list[str]], *, cursor: Any, converted: bool) -> list[Any]:
        if not self.calls:
            self.release.wait(10)
        self.calls.append(("ingest", (ctx.actor, cursor[0], [r[0] for r in records], cursor[2])))
        return []

    def quarantine_many(self, ctx: Any, entries: Any) -> int:
        return 0

    def set_cursor(self, ctx: Any, source: str, stream: str, cursor: Any) -> None:
        self.calls.append(("cursor", (source, cursor)))

    def record_file_ingested(self, ctx: Any, source: str, digest: str, location: str) -> None:
        self.calls.append(("file", (source, digest)))


def test_the_writer_never_puts_two_sources_in_one_transaction() -> None:
    store = _RecordingStore()
    sinks = [
        _Sink("first", connector_context("first"), RunStats("first"), None, None),
        _Sink("web", connector_context("web"), RunStats("web"), "d-web", "web.jsonl"),
        _Sink("pos", connector_context("pos"), RunStats("pos"), "d-pos", "pos.csv"),
    ]
    writer = _Writer(store, sinks, converted=False, started=0.0)  # type: ignore[arg-type]

    def batch(job: int, name: str, *, final: bool = False) -> Batch:
        return Batch([name], [], {"at": name}, job=job, final=final)  # type: ignore[list-item]

    # The first source's only batch is written alone (it is final); its transaction waits for the
    # release below, so the other batches queue up meanwhile. The web batches are not marked final,
    # so only their source tells the writer where the next transaction must begin.
    writer.submit(batch(0, "f1", final=True))
    for queued in (batch(1, "w1"), batch(1, "w2"), batch(2, "p1"), batch(2, "p2", final=True)):
        writer.submit(queued)
    store.release.set()
    writer.close()
    assert store.calls == [
        ("ingest", ("connector:first", "first", ["f1"], {"at": "f1"})),
        ("ingest", ("connector:web", "web", ["w1", "w2"], {"at": "w2"})),
        ("ingest", ("connector:pos", "pos", ["p1", "p2"], {"at": "p2"})),
        ("file", ("pos", "d-pos")),
    ]
    assert sinks[0].stats.seconds > 0 and sinks[2].stats.seconds > 0


@dataclass
class DemoStore:
    sources: list[tuple[str, dict[str, Any]]]
    settings: Settings
    store: CustomerStore


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoStore]:
    """The demo's three files (see demo_sources) and an empty SQLite store."""
    settings = sqlite_settings(tmp_path / "data")
    store = open_store(settings, migrate=True)
    try:
        yield DemoStore(demo_sources(tmp_path / "demo"), settings, store)
    finally:
        store.close()


def test_a_source_named_twice_is_refused_before_anything_is_read(demo: DemoStore) -> None:
    sources, settings, store = demo.sources, demo.settings, demo.store
    twice = [make_connector(settings, *sources[0]), make_connector(settings, *sources[0])]
    with pytest.raises(ConfigurationError, match="'website' appears twice"):
        IngestRunner(store, settings).run_many(twice, parallel=False)
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM records")).scalar() == 0


def test_an_ingested_file_is_skipped_and_the_others_read(demo: DemoStore) -> None:
    sources, settings, store = demo.sources, demo.settings, demo.store
    runner = IngestRunner(store, settings)
    first = runner.run(make_connector(settings, *sources[0]), parallel=False)
    runs = runner.run_many([make_connector(settings, *s) for s in sources[:2]], parallel=False)
    assert [(s.skipped_file, s.read) for s in runs] == [(True, 0), (False, runs[1].read)]
    assert runs[1].read > 100 and first.read > 100


def test_a_failing_source_stops_the_run_after_storing_the_one_before(demo: DemoStore, tmp_path: Path) -> None:
    sources, settings, store = demo.sources, demo.settings, demo.store
    broken = make_connector(settings, "pos", {"path": str(tmp_path / "missing.csv")})
    with pytest.raises(UnknownSourceError, match=r"missing\.csv"):
        IngestRunner(store, settings).run_many([make_connector(settings, *sources[0]), broken], parallel=False)
    with store.engine.connect() as connection:
        by_source: dict[str, int] = dict(
            connection.execute(text("SELECT source, count(*) FROM records GROUP BY source")).all()
        )
        recorded = connection.execute(text("SELECT source FROM ingested_files")).scalars().all()
    assert set(by_source) == {"website"} and by_source["website"] > 100
    assert recorded == ["website"]
    # Run again with the file fixed: the website's file is skipped, the rest is read.
    runs = IngestRunner(store, settings).run_many([make_connector(settings, *s) for s in sources], parallel=False)
    assert [s.skipped_file for s in runs] == [True, False, False]


def test_a_failing_source_in_the_worker_stops_the_run_after_storing_the_one_before(tmp_path: Path) -> None:
    sources = demo_sources(tmp_path / "demo")
    settings = sqlite_settings(tmp_path / "data")
    result = run_many_in_subprocess(settings, [sources[0], ("pos", {"path": str(tmp_path / "missing.csv")})], tmp_path)
    assert result["error"] == "UnknownSourceError" and "missing.csv" in result["message"]
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            by_source: dict[str, int] = dict(
                connection.execute(text("SELECT source, count(*) FROM records GROUP BY source")).all()
            )
        assert set(by_source) == {"website"} and by_source["website"] > 100
    finally:
        engine.dispose()


RUN_TWO = """
import json, sys
from cdp.access import open_store
from cdp.access.context import connector_context
from cdp.connectors.runner import IngestRunner, make_connector
from cdp.settings import load_settings

settings = load_settings()
store = open_store(settings, migrate=True)
runs = IngestRunner(store, settings).run_many(
    [make_connector(settings, "website", {"path": sys.argv[1]}), make_connector(settings, "pos", {"path": sys.argv[2]})]
)
print(json.dumps([{"read": s.read, "skipped": s.skipped_file, "worker": s.worker} for s in runs]))
store.close()
"""


def write_transactions(path: Path, count: int) -> tuple[set[str], set[int]]:
    """``count`` POS rows; returns the valid transaction ids and the line numbers of bad ones."""
    good: set[str] = set()
    bad: set[int] = set()
    with path.open("w", encoding="utf-8") as handle:
        handle.write(
            "transaction_id,store_id,occurred_at,customer_name,customer_phone,customer_email,loyalty_id,"
            "line_items,amount,currency,city,state,postcode,country\n"
        )
        for n in range(1, count + 1):
            amount = "abc" if n % 97 == 0 else f"{n % 50}.00"
            handle.write(f"t{n:06d},S1,2026-10-01T10:00:00Z,,,p{n % 500}@example.org,,[],{amount},USD,,,,US\n")
            if n % 97 == 0:
                bad.add(n + 1)  # the header is line 1
            else:
                good.add(f"t{n:06d}")
    return good, bad


@pytest.mark.slow
def test_a_killed_run_of_two_sources_stores_each_record_once_when_restarted(tmp_path: Path) -> None:
    """Killed while the first source is read, then while the second is (the first's last batches
    possibly still queued), then run to the end: every line of both files once, stored or quarantined."""
    web, pos = tmp_path / "calls.jsonl", tmp_path / "pos.csv"
    web_good, web_bad = write_calls(web, 12_000)
    pos_good, pos_bad = write_transactions(pos, 12_000)
    assert web.stat().st_size + pos.stat().st_size >= PARALLEL_MIN_BYTES  # the killed runs read in a worker
    settings = sqlite_settings(tmp_path / "data")
    open_store(settings, migrate=True).close()
    env = environment(settings, batch_size=400)
    both = [str(web), str(pos)]
    watcher = create_engine(settings.database_url)
    try:
        for at_least in (3_000, len(web_good) + 4_000):
            stored = kill_after(watcher, web, env, at_least, tmp_path, script=RUN_TWO, args=both)
            assert stored < len(web_good) + len(pos_good), "the kill came too late to test anything"
        runs = run_script(RUN_TWO, both, env, tmp_path)
        assert runs[0]["skipped"] and not runs[1]["skipped"]
        assert 0 < runs[1]["read"] < len(pos_good), "the restart did not resume the second file from its cursor"
        with watcher.connect() as connection:
            for source, good, bad in (("website", web_good, web_bad), ("pos", pos_good, pos_bad)):
                ids = (
                    connection.execute(text("SELECT source_record_id FROM records WHERE source = :s"), {"s": source})
                    .scalars()
                    .all()
                )
                positions = (
                    connection.execute(text("SELECT position FROM quarantine WHERE source = :s"), {"s": source})
                    .scalars()
                    .all()
                )
                assert len(ids) == len(set(ids)) and set(ids) == good, source
                assert len(positions) == len(set(positions)), f"{source}: a line was quarantined twice"
                assert {int(p.rsplit(":", 1)[1]) for p in positions} == bad, source
    finally:
        watcher.dispose()
