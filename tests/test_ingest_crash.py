"""Crash safety: an ingest killed with SIGKILL and restarted stores every record exactly once.

Why: the runner's promise is "a crash loses nothing and duplicates nothing".
Only a real kill tests it: the ingest runs in a subprocess (settings from
``CDP_*`` variables, small batches), is SIGKILLed after some batches have
committed, and is run again; then every input line must be exactly one
stored record or one quarantine entry, none twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from cdp.access import CustomerStore
from cdp.access.context import AccessContext
from cdp.settings import Settings

OPS = AccessContext("t", "data_engineer", "operations")
RUN = """
import json, sys
from cdp.access import open_store
from cdp.connectors.runner import IngestRunner, make_connector
from cdp.settings import load_settings

settings = load_settings()
store = open_store(settings, migrate=True)
stats = IngestRunner(store, settings).run(make_connector(settings, "website", {"path": sys.argv[1]}))
print(json.dumps({"read": stats.read, "accepted": stats.accepted, "rejected": stats.rejected,
                  "duplicates": stats.duplicates, "skipped": stats.skipped_file, "worker": stats.worker}))
store.close()
"""


def write_calls(path: Path, count: int) -> tuple[set[str], set[int]]:
    """``count`` lines of Segment calls; returns the message ids that are valid and the bad line numbers."""
    good: set[str] = set()
    bad: set[int] = set()
    with path.open("w", encoding="utf-8") as handle:
        for n in range(1, count + 1):
            mid = f"m-{n:07d}"
            person = n % 997
            if n % 211 == 0:
                handle.write('{"type": "track", "messageId": ' + f'"{mid}", oops\n')
                bad.add(n)
                continue
            if n % 10 == 0:
                email = "not-an-email" if n % 301 == 0 else f"p{person}@example.org"
                call = {"type": "identify", "userId": f"u{person}", "traits": {"email": email, "firstName": "Pat"}}
            else:
                call = {"type": "track", "userId": f"u{person}", "event": "Viewed", "properties": {"sku": n}}
            call |= {"messageId": mid, "timestamp": "2026-10-01T10:00:00Z"}
            handle.write(json.dumps(call) + "\n")
            if n % 10 == 0 and n % 301 == 0:
                bad.add(n)
            else:
                good.add(mid)
    return good, bad


def stored(store: CustomerStore) -> tuple[int, int]:
    found = store.counts(OPS)
    return found.get("records:website", 0), found.get("quarantine", 0)


def records_now(engine: Engine) -> int:
    """A plain read (no audit row, no write lock), so polling never slows the ingest it watches."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM records")).scalar() or 0)


def environment(settings: Settings, batch_size: int) -> dict[str, str]:
    return {
        **os.environ,
        "CDP_DATA_DIR": str(settings.data_dir),
        "CDP_DATABASE_URL": settings.database_url,
        "CDP_KEYS_DIR": str(settings.keys_dir),
        "CDP_BATCH_SIZE": str(batch_size),
        "CDP_LOG_LEVEL": "ERROR",
    }


def kill_after(
    engine: Engine,
    path: Path,
    env: dict[str, str],
    at_least: int,
    cwd: Path,
    timeout: float = 120,
    *,
    script: str = RUN,
    args: Sequence[str] | None = None,
) -> int:
    """Start an ingest (``script`` with ``args``, by default RUN of ``path``), SIGKILL it once ``at_least``
    records are stored; return how many were stored by then."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *(args if args is not None else [str(path)])],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if records_now(engine) >= at_least:
                break
            assert process.poll() is None, f"the ingest ended before it could be killed: {process.communicate()}"
            assert time.monotonic() < deadline, "the ingest made no progress"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    return records_now(engine)


def run_script(script: str, args: Sequence[str], env: dict[str, str], cwd: Path) -> Any:
    """Run ``script`` in a new interpreter to the end; what it printed last, read as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def finish(path: Path, env: dict[str, str], cwd: Path) -> dict[str, int]:
    result: dict[str, int] = run_script(RUN, [str(path)], env, cwd)
    return result


def check_exactly_once(store: CustomerStore, good: set[str], bad: set[int]) -> None:
    with store.engine.connect() as connection:
        ids = [r[0] for r in connection.execute(text("SELECT source_record_id FROM records WHERE source = 'website'"))]
        positions = [r[0] for r in connection.execute(text("SELECT position FROM quarantine WHERE source = 'website'"))]
        events = connection.execute(text("SELECT count(*) FROM events WHERE source = 'website'")).scalar()
        keys = connection.execute(
            text("SELECT count(idempotency_key), count(DISTINCT idempotency_key) FROM records")
        ).one()  # the website's records have none: their (source, stream, record id) is their key
    assert len(ids) == len(set(ids)), "a record was stored twice"
    assert set(ids) == good, "stored records differ from the valid input lines"
    assert len(positions) == len(set(positions)), "a line was quarantined twice"
    assert {int(p.rsplit(":", 1)[1]) for p in positions} == bad
    assert events == len(good)
    assert keys[0] == keys[1]
    assert stored(store) == (len(good), len(bad))


@pytest.mark.slow
def test_killed_and_restarted_ingest_stores_each_record_once(
    tmp_path: Path, settings: Settings, store: CustomerStore
) -> None:
    """Killed twice (after a third, then after a further quarter), then run to the end."""
    total, kills = 20_000, 2
    path = tmp_path / "calls.jsonl"
    good, bad = write_calls(path, total)
    # Small batches: the writer commits up to 8 queued batches at once, and each kill must land mid-run.
    env = environment(settings, batch_size=400)
    before = 0
    watcher = create_engine(settings.database_url)
    try:
        for round_ in range(kills):
            before = kill_after(watcher, path, env, at_least=before + total // (3 + round_), cwd=tmp_path)
            assert 0 < before < len(good), f"kill {round_ + 1} came too late to test anything ({before} stored)"
    finally:
        watcher.dispose()
    rerun = finish(path, env, tmp_path)
    assert rerun["read"] < total, "the restart read the file again from the start instead of from the cursor"
    assert rerun["worker"], "a file this size is read in a worker process: the kills should have tested that path"
    check_exactly_once(store, good, bad)
    again = finish(path, env, tmp_path)
    assert again["skipped"] or again["accepted"] == 0
    check_exactly_once(store, good, bad)
