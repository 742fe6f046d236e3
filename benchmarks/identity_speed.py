"""Identity-resolution speed: a full batch run, and one new record against 100,000 profiles.

    python benchmarks/identity_speed.py batch --records 100000
    python benchmarks/identity_speed.py incremental --profiles 100000

``batch`` generates demo data with ``cdp.demo.generate`` (about 6.8 records
per customer, so the customer count is chosen from ``--records``), ingests
its three sources through the connectors into a fresh store, then times
``resolve_identities(store, settings, retrain=True)``: reading and decrypting
the identifiers, normalising, training the model, blocking and scoring with
splink, clustering, and writing profiles and match evidence. Ingest is timed
separately and is not part of the resolution figure.

``incremental`` trains a model on a small demo store, then fills a
:class:`cdp.identity.incremental.ProfileIndex` with ``--profiles`` synthetic
people (one to three records each, with the demo's kinds of variation) and
matches new records (half are edited copies of indexed people, half are new
people) one at a time, reporting percentiles of the per-record latency. The
index holds the same blocking keys a store would keep as blind indexes; the
lookup is therefore a dictionary probe per key, as a keyed-digest table
lookup would be.

``--data-dir DIR`` keeps the ingested, never resolved store in ``DIR/ingested``
and reuses it on the next run (ingest is skipped when ``DIR/ingested-<customers>``
says a complete ingest of that size is there): each run resolves a fresh copy
of it in ``DIR/run`` (copying is not timed), so every run is a first
resolution. ``--again`` then resolves that copy a second time, which measures
a re-resolution of a resolved store (stable profile ids, few changes). Without
``--data-dir`` a temporary directory is used and removed.

Peak memory is the process's peak resident set (``resource.getrusage``),
which includes generation and ingest. Output is counts and timings only.
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from cdp.access import open_store
from cdp.identity.incremental import ProfileIndex
from cdp.identity.probabilistic import load_model
from cdp.identity.service import resolve_identities
from cdp.pipeline import SourceSpec, ingest
from cdp.settings import Settings

RECORDS_PER_CUSTOMER = 6.8
"""Demo records per customer (68,151 records for 10,000 customers)."""

_GIVEN = ("james", "mary", "wei", "olivia", "noah", "sofia", "liam", "emma", "lucas", "mia", "arjun", "yuki", "omar")
_FAMILY = ("smith", "garcia", "wang", "muller", "rossi", "nguyen", "khan", "silva", "kim", "dubois", "cohen", "novak")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _fill_store(workdir: Path, customers: int, *, keep: bool = False) -> tuple[Settings, Any, float | None]:
    """A store filled with ``customers`` demo people, opened; with ``keep`` a fresh copy of a kept ingest."""
    from cdp.demo import generate

    ingested = Settings(data_dir=workdir / "ingested")
    marker = workdir / f"ingested-{customers}"
    seconds: float | None = None
    if not marker.is_file():
        for stale in (workdir / "ingested", workdir / "run", workdir / "demo"):
            if stale.exists():  # an interrupted or different-size fill: start over
                shutil.rmtree(stale)
        for old_marker in workdir.glob("ingested-*"):
            old_marker.unlink()
        files = generate(workdir / "demo", customers=customers, seed=42, as_of=date(2026, 11, 1))
        store = open_store(ingested, migrate=True)
        started = time.perf_counter()
        for connector, attribute, extra in (
            ("website", "web", {}),
            ("pos", "pos", {"region_from_store_id": True}),
            ("survey", "survey", {}),
        ):
            ingest(store, ingested, SourceSpec(connector, {**extra, "path": str(getattr(files, attribute))}))
        seconds = time.perf_counter() - started
        shutil.rmtree(workdir / "demo")  # the generated files are not needed once ingested
        if not keep:
            return ingested, store, seconds
        store.close()
        marker.write_text(f"{seconds:.1f}\n", encoding="utf-8")
    run = Settings(data_dir=workdir / "run")
    if run.data_dir.exists():
        shutil.rmtree(run.data_dir)
    shutil.copytree(ingested.data_dir, run.data_dir)
    return run, open_store(run, migrate=True), seconds


def run_batch(workdir: Path, records: int, *, keep: bool = False, resolve: bool = True, again: bool = False) -> None:
    customers = max(10, round(records / RECORDS_PER_CUSTOMER))
    settings, store, ingest_seconds = _fill_store(workdir, customers, keep=keep)
    if not resolve:
        print(f"store filled with {customers:,} demo customers in {ingest_seconds or 0:.1f} s: {workdir}")
        store.close()
        return
    if again:
        resolve_identities(store, settings, retrain=True)
        print("== the store is resolved once; the figures below are its re-resolution")
    started = time.perf_counter()
    report = resolve_identities(store, settings, retrain=True)
    total = time.perf_counter() - started
    stats = report.stats
    print(f"== batch resolution, demo data, {customers:,} customers")
    if ingest_seconds is None:
        print(f"{'ingest (not counted)':40s} a fresh copy of the store kept in {workdir}")
    else:
        print(f"{'ingest seconds (not counted)':40s} {ingest_seconds:.1f}")
    print(f"{'records resolved':40s} {stats.records:,}")
    print(f"{'profiles':40s} {stats.profiles:,}")
    print(f"{'scored pairs above threshold':40s} {report.scored_pairs:,}")
    for name, seconds in report.timings.items():
        print(f"{'seconds: ' + name:40s} {seconds:.1f}")
    print(f"{'seconds: resolve total':40s} {total:.1f}")
    print(f"{'peak RSS MB (whole process)':40s} {_peak_mb():.0f}")
    store.close()


def _person(rng: random.Random, number: int) -> dict[str, Any]:
    given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
    return {
        "given_name": given + rng.choice(("", "a", "e", "o", "ie", "y")),
        "family_name": family + rng.choice(("", "s", "er", "son", "ley", "ford")),
        "email": f"{given}.{family}{number}@example.com",
        "phone": f"+4420{7000000 + number * 7 % 9_000_000:08d}"[:13],
        "date_of_birth": f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "postcode": f"{rng.choice('ABCDEFGHJ')}{rng.randint(1, 99)} {rng.randint(1, 9)}{rng.choice('ABDEFGHJ')}L",
        "city": rng.choice(("london", "leeds", "york", "bath", "derby")),
        "country": "GB",
        "user_id": f"u{number:07d}" if rng.random() < 0.5 else None,
    }


def _variant(rng: random.Random, person: dict[str, Any]) -> dict[str, Any]:
    out = dict(person)
    change = rng.random()
    if change < 0.3:
        out["email"] = None  # a till that never asked
    elif change < 0.5:
        out["phone"] = None
        out["email"] = out["email"].replace(".", "_", 1)
    elif change < 0.7:
        name = out["given_name"]
        out["given_name"] = name[:-1] if len(name) > 3 else name
    if rng.random() < 0.3:
        out["date_of_birth"] = None
    return out


def run_incremental(workdir: Path, profiles: int, queries: int) -> None:
    settings, store, _ = _fill_store(workdir, 2_000)
    resolve_identities(store, settings, retrain=True)
    store.close()
    model = load_model(settings.model_path)
    assert model is not None
    index = ProfileIndex(model, threshold=settings.match_threshold)
    rng = random.Random(11)
    started = time.perf_counter()
    people: list[dict[str, Any]] = []
    count = 0
    for number in range(profiles):
        person = _person(rng, number)
        people.append(person)
        for _ in range(rng.randint(1, 3)):
            count += 1
            index.add_records(
                [{**_variant(rng, person), "record_id": f"r{count}", "profile_id": f"p{number}", "kind": "identity"}]
            )
    build = time.perf_counter() - started
    latencies: list[float] = []
    found = candidates = 0
    for query in range(queries):
        if query % 2 == 0:
            number = rng.randrange(profiles)
            record = _variant(rng, people[number])
        else:
            record = _person(rng, profiles + query)
        record = {**record, "record_id": f"q{query}", "kind": "identity"}
        started = time.perf_counter()
        result = index.match(record)
        latencies.append((time.perf_counter() - started) * 1000)
        found += result.profile_id is not None
        candidates += result.candidates_scored
    latencies.sort()
    print(f"== incremental match against {profiles:,} profiles ({count:,} records), in-memory key index")
    print(f"{'index build seconds':40s} {build:.1f}")
    print(f"{'queries (half known people)':40s} {queries:,}")
    print(f"{'matched to a profile':40s} {found:,}")
    print(f"{'mean candidates scored':40s} {candidates / queries:.1f}")
    print(f"{'latency ms p50':40s} {statistics.median(latencies):.2f}")
    print(f"{'latency ms p95':40s} {latencies[int(0.95 * len(latencies)) - 1]:.2f}")
    print(f"{'latency ms p99':40s} {latencies[int(0.99 * len(latencies)) - 1]:.2f}")
    print(f"{'latency ms max':40s} {latencies[-1]:.2f}")
    print(f"{'peak RSS MB (whole process)':40s} {_peak_mb():.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["batch", "incremental"])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--data-dir", type=Path, help="keep the ingested store here and reuse it (batch only)")
    parser.add_argument("--ingest-only", action="store_true", help="fill the --data-dir store, do not resolve")
    parser.add_argument("--again", action="store_true", help="time a second resolution of the resolved store")
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    if args.mode == "batch" and args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        run_batch(args.data_dir, args.records, keep=True, resolve=not args.ingest_only, again=args.again)
        return 0
    with tempfile.TemporaryDirectory(prefix="cdp-identity-speed-") as tmp:
        if args.mode == "batch":
            run_batch(Path(tmp), args.records, again=args.again)
        else:
            run_incremental(Path(tmp), args.profiles, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
