"""Real-time identity matching through the store: one new record against N existing profiles.

    python benchmarks/identity_realtime.py --profiles 100000 --queries 1000

Set-up (not timed as latency): a 2,000-customer demo store is resolved, which
trains the model; then ``--profiles`` synthetic people (one to three records
each, with the demo's kinds of variation: missing e-mail or phone, e-mail
spelt differently, a shortened given name, no birth date) are ingested and
resolved in one batch run with that model, which also writes every record's
match keys (the set-up prints that run's stage timings).

Each query is one record, ingested on its own (not timed), then matched with
``match_new_records(store, settings, record_ids=[id])``, which is timed whole:
finding the record, reading its identifiers, looking its match keys up as
blind indexes, decrypting the candidates and their profiles' records, scoring,
the guards, attaching it and writing its match keys and evidence, each in its
own audited transaction. Half the queries are edited copies of indexed people
(their true profile is known), half are new people.

``--data-dir DIR`` keeps the set-up store in ``DIR/base`` and reuses it on later runs with the
same ``--profiles`` (each run matches against a fresh copy in ``DIR/run``).

Output: counts, latency percentiles, accuracy of the known half, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from identity_speed import _fill_store, _person, _variant

from cdp.access import open_store
from cdp.access.context import connector_context, identity_context
from cdp.identity.realtime import match_new_records
from cdp.identity.service import resolve_identities
from cdp.model import IncomingRecord
from cdp.settings import Settings

IDENTITY_KEYS = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "date_of_birth",
    "postcode",
    "city",
    "country",
    "user_id",
)


def _record(source_id: str, person: dict[str, Any], when: datetime) -> IncomingRecord:
    identity = {k: str(person[k]) for k in IDENTITY_KEYS if person.get(k)}
    return IncomingRecord(
        source="bench",
        stream="people",
        source_record_id=source_id,
        occurred_at=when,
        payload={"id": source_id},
        identity=identity,
        match_keys={k: identity[k] for k in ("email", "phone", "user_id") if k in identity},
    )


def _set_up(
    workdir: Path, profiles: int, rng: random.Random, when: datetime
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """A resolved store of ``profiles`` synthetic people in ``workdir/base``; the people and their profiles."""
    base = workdir / "base"
    workdir.mkdir(parents=True, exist_ok=True)
    if base.exists():
        shutil.rmtree(base)
    filled, store, _ = _fill_store(workdir / "demo-store", 2_000)
    resolve_identities(store, filled, retrain=True)
    store.close()
    shutil.copytree(filled.data_dir, base / "data")
    shutil.rmtree(workdir / "demo-store")
    settings = Settings(data_dir=base / "data", keys_dir=base / "data" / "keys")
    store = open_store(settings)
    ctx = connector_context("bench")
    started = time.perf_counter()
    people: list[dict[str, Any]] = []
    batch: list[IncomingRecord] = []
    count = 0
    for number in range(profiles):
        person = _person(rng, number)
        people.append(person)
        for _ in range(rng.randint(1, 3)):
            count += 1
            batch.append(_record(f"p{number}-{count}", _variant(rng, person), when))
        if len(batch) >= 5_000:
            store.ingest(ctx, batch)
            batch = []
    if batch:
        store.ingest(ctx, batch)
    ingest_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = resolve_identities(store, settings)
    resolve_seconds = time.perf_counter() - started
    profile_of_person: dict[int, str] = {}
    for feature in store.identity_features(identity_context(), include_identifiers=False):
        source_id = str(feature["source_record_id"])
        if feature["source"] == "bench" and feature["profile_id"]:
            profile_of_person.setdefault(int(source_id[1:].split("-", maxsplit=1)[0]), feature["profile_id"])
    store.close()
    print(f"== set-up: {profiles:,} people, {count:,} records")
    print(f"{'ingest seconds':40s} {ingest_seconds:.1f}")
    print(f"{'batch resolve seconds':40s} {resolve_seconds:.1f}")
    for name, seconds in report.timings.items():
        print(f"{'  ' + name:40s} {seconds:.1f}")
    print(f"{'profiles after the batch':40s} {report.stats.profiles:,}")
    return people, profile_of_person


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--data-dir", type=Path, help="keep the set-up store here and reuse it")
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    rng = random.Random(11)
    when = datetime(2026, 11, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="cdp-identity-realtime-") as tmp:
        workdir = args.data_dir or Path(tmp)
        marker = workdir / f"base-{args.profiles}"
        if not marker.is_file():
            people, profile_of_person = _set_up(workdir, args.profiles, rng, when)
            marker.write_text(json.dumps({"people": people, "profiles": profile_of_person}), encoding="utf-8")
        saved = json.loads(marker.read_text(encoding="utf-8"))
        people = saved["people"]
        profile_of_person = {int(k): v for k, v in saved["profiles"].items()}
        run = workdir / "run"
        if run.exists():
            shutil.rmtree(run)
        shutil.copytree(workdir / "base", run)
        settings = Settings(data_dir=run / "data", keys_dir=run / "data" / "keys")
        store = open_store(settings)
        ctx = connector_context("bench")
        rng = random.Random(23)  # the queries do not depend on whether the set-up was reused
        latencies: list[float] = []
        joined = right = known_queries = created = 0
        for query in range(args.queries):
            known = query % 2 == 0
            number = rng.randrange(args.profiles) if known else args.profiles + query
            person = _variant(rng, people[number]) if known else _person(rng, number)
            outcome = store.ingest(ctx, [_record(f"q{query}", person, when)])
            clock = time.perf_counter()
            result = match_new_records(store, settings, record_ids=outcome.record_ids)
            latencies.append((time.perf_counter() - clock) * 1000)
            joined += result.joined_existing
            created += result.new_profiles
            if known:
                known_queries += 1
                (mine,) = store.identity_features(
                    identity_context(), include_identifiers=False, record_ids=outcome.record_ids
                )
                right += mine["profile_id"] == profile_of_person.get(number)
        latencies.sort()
        print(f"== {args.queries:,} single-record matches against the store")
        print(f"{'joined an existing profile':40s} {joined:,}")
        print(f"{'new profiles':40s} {created:,}")
        print(f"{'known people found in their profile':40s} {right:,} of {known_queries:,}")
        print(f"{'latency ms p50':40s} {statistics.median(latencies):.2f}")
        print(f"{'latency ms p95':40s} {latencies[int(0.95 * len(latencies)) - 1]:.2f}")
        print(f"{'latency ms p99':40s} {latencies[int(0.99 * len(latencies)) - 1]:.2f}")
        print(f"{'latency ms max':40s} {latencies[-1]:.2f}")
        print(f"{'peak RSS MB (whole process)':40s} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
