"""Reading N profiles through the access layer (policy, decryption, masking, consent filter,
audit) versus the same read of plaintext columns with no policy.

Two plaintext baselines, both built for the benchmark only in its temporary directory:

- *same read path on plaintext*: a copy of the store whose token columns hold the plaintext
  (UTF-8 bytes), read by ``read_profiles`` itself (same statements, same two-process split,
  same assembly) with every decryption replaced by decoding those bytes, no key look-up, and no
  masking or consent filter (a compliance officer's read);
- *minimal plaintext read*: the same values from a plaintext table, read with ``sqlite3`` and
  assembled into the same dicts (group by profile, most recent value per field) in plain Python,
  one process.

    python benchmarks/access_read.py --profiles 100000
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cdp.access import AccessContext, CustomerStore, open_store
from cdp.access import _profile_rows as profile_rows
from cdp.access._profile_rows import _CLEAR_AT as CLEAR_AT
from cdp.access._profile_rows import _ENCRYPTED_AT as ENCRYPTED_AT
from cdp.access.context import connector_context, identity_context
from cdp.model import EventData, IncomingRecord
from cdp.settings import Settings

FIELDS = ("given_name", "family_name", "email", "phone", "city", "country")
ENCRYPTED = ("email", "phone", "given_name", "family_name")  # the token columns the read fetches, in that order
FIRST = [
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Wei",
    "Li",
    "Maria",
    "Omar",
]
LAST = ["Smith", "Jones", "Garcia", "Muller", "Wang", "Chen", "Brown", "Martin", "Rossi", "Novak", "Kim", "Silva"]
CITIES = ["London", "Berlin", "Paris", "Austin", "Boston", "Shanghai", "Chengdu", "Lyon"]


def make_records(n: int, seed: int = 1) -> list[IncomingRecord]:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        given, family = rng.choice(FIRST), rng.choice(LAST)
        identity = {
            "given_name": given,
            "family_name": family,
            "email": f"{given.lower()}.{family.lower()}{i}@example.com",
            "phone": f"+1415{i:07d}",
            "city": rng.choice(CITIES),
            "country": "US",
        }
        when = start + timedelta(minutes=i)
        out.append(
            IncomingRecord(
                source="bench",
                stream="rows",
                source_record_id=str(i),
                occurred_at=when,
                payload={"i": i},
                identity=identity,
                match_keys={"email": identity["email"], "phone": identity["phone"]},
                events=[EventData("track", when, "Order Completed", revenue=10.0, channel="web")],
            )
        )
    return out


def plaintext_twin(
    store: CustomerStore, base: Path, records: list[IncomingRecord], ids: dict[str, str]
) -> CustomerStore:
    """A copy of ``store`` (for the benchmark only, in its temporary directory) whose token
    columns hold each field's plaintext as UTF-8 bytes: "the same read of plaintext columns"."""
    store.engine.dispose()
    twin_dir = base / "plain-twin"
    twin_dir.mkdir()
    source = sqlite3.connect(base / "data" / "cdp.sqlite")
    target = sqlite3.connect(twin_dir / "cdp.sqlite")
    source.backup(target)
    source.close()
    target.executemany(
        f"UPDATE records SET {', '.join(f'{name}_enc = ?' for name in ENCRYPTED)} WHERE id = ?",
        [(*(r.identity[name].encode() for name in ENCRYPTED), ids[r.source_record_id]) for r in records],
    )
    target.commit()
    target.close()
    return open_store(replace(store.settings, data_dir=twin_dir, database_url=""))


@contextmanager
def plaintext_reads(twin: CustomerStore) -> Iterator[None]:
    """The read path with each piece of decryption replaced by decoding the plaintext bytes."""

    def values_reader(fields: Any, _unwrap: Any) -> Any:
        positions = [position for _, position in fields]

        def read(_blob: Any, _key_id: str, _record_id: str, row: Any) -> list[str | None]:
            return [row[p].decode() or None if row[p] else None for p in positions]

        return read

    def decoder(needed: Any, identity_fields: Any, _data_key_of: Any) -> Any:
        at = {name: ENCRYPTED_AT + i for i, name in enumerate(identity_fields)}
        plan = [(name, at[name], True) if name in at else (name, CLEAR_AT[name], False) for name in needed]

        def decode(row: Any) -> dict[str, str]:
            out = {}
            for name, position, encrypted in plan:
                value = row[position]
                if value:
                    out[name] = value.decode() if encrypted else value
            return out

        return decode

    def readers(needed: Any, identity_fields: Any, _cipher_of: Any) -> list[tuple[str, Any]]:
        decode = decoder(needed, identity_fields, None)
        return [(name, lambda row, name=name: decode(row).get(name)) for name in needed]

    original = profile_rows.row_values_reader
    profile_rows.row_values_reader = values_reader  # type: ignore[assignment]
    twin._row_decoder = decoder  # type: ignore[method-assign]
    twin._field_readers = readers  # type: ignore[method-assign]
    twin.keystore.every_blob_by_kek = dict  # type: ignore[method-assign]
    twin.keystore.every_blob_by_kek_soon = lambda: dict  # type: ignore[method-assign]
    twin.keystore.blobs_by_kek = lambda _key_ids: {}  # type: ignore[method-assign]
    try:
        yield
    finally:
        profile_rows.row_values_reader = original
        del twin._row_decoder, twin._field_readers, twin.keystore.every_blob_by_kek, twin.keystore.blobs_by_kek
        del twin.keystore.every_blob_by_kek_soon


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cdp-bench-access-"))
    settings = Settings(data_dir=base / "data", keys_dir=base / "keys", audit_checkpoint_every=10_000_000)
    store = open_store(settings, migrate=True)
    records = make_records(args.profiles)
    t0 = time.perf_counter()
    for start in range(0, len(records), 5000):
        store.ingest(connector_context("bench"), records[start : start + 5000])
    features = store.identity_features(identity_context(), include_identifiers=False)
    store.apply_clusters(identity_context(), {f["record_id"]: f["record_id"] for f in features}, method="bench")
    print(f"setup: {args.profiles:,} profiles in {time.perf_counter() - t0:.1f} s")

    plain = sqlite3.connect(base / "plain.sqlite")
    plain.execute(
        "CREATE TABLE records (profile_id TEXT, occurred_at TEXT, " + ", ".join(f"{f} TEXT" for f in FIELDS) + ")"
    )
    link = {
        f["record_id"]: f["profile_id"] for f in store.identity_features(identity_context(), include_identifiers=False)
    }
    by_source_id = {
        f["source_record_id"]: f["record_id"]
        for f in store.identity_features(identity_context(), include_identifiers=False)
    }
    plain.executemany(
        f"INSERT INTO records VALUES (?, ?, {', '.join('?' for _ in FIELDS)})",
        [
            (
                link[by_source_id[r.source_record_id]],
                r.occurred_at.isoformat() if r.occurred_at else "",
                *(r.identity[f] for f in FIELDS),
            )
            for r in records
        ],
    )
    plain.commit()

    def read_plain() -> int:
        grouped: dict[str, list[tuple[object, ...]]] = defaultdict(list)
        for row in plain.execute("SELECT * FROM records"):
            grouped[row[0]].append(row)
        out = []
        for profile_id in sorted(grouped):
            rows = sorted(grouped[profile_id], key=lambda r: str(r[1]), reverse=True)
            out.append(
                {
                    "profile_id": profile_id,
                    **{f: next((r[i + 2] for r in rows if r[i + 2]), None) for i, f in enumerate(FIELDS)},
                }
            )
        return len(out)

    marketer = AccessContext("user:bench", "marketer", "analytics")
    officer = AccessContext("user:bench", "compliance_officer", "compliance")
    twin = plaintext_twin(store, base, records, by_source_id)

    with plaintext_reads(twin):  # the baseline reads the plaintext itself, not empty fields
        sample = {row["email"] for row in twin.read_profiles(officer, FIELDS)}
    assert sample == {r.identity["email"] for r in records}, "the plaintext twin does not read the plaintext"
    del records, features, link, by_source_id, sample  # a reading process does not hold the input

    def read_same_path_plaintext() -> int:
        """The same read (same statements, same assembly code) of a copy of the store whose
        token columns hold the plaintext, with decryption replaced by decoding those bytes, no
        key look-up, and no masking or consent filter (a compliance officer's read)."""
        with plaintext_reads(twin):
            return len(twin.read_profiles(officer, FIELDS))

    def read_access() -> int:
        return len(store.read_profiles(marketer, FIELDS))

    same_path = "same read path, plaintext, no masking or consent filter"
    cpu: dict[str, list[float]] = {}
    timings: dict[str, list[float]] = {
        "plaintext, no policy": [],
        same_path: [],
        "access layer (decrypt + mask + audit)": [],
    }
    # What the set-up leaves alive (the stores, imported modules) is out of the collector's sight,
    # as the long-lived state of any process would be after start-up, so no read pays for walking
    # it in a full collection. The same for the three reads.
    gc.collect()
    gc.freeze()
    for _ in range(args.repeat):
        for label, fn in (
            ("plaintext, no policy", read_plain),
            (same_path, read_same_path_plaintext),
            ("access layer (decrypt + mask + audit)", read_access),
        ):
            t, c = time.perf_counter(), time.process_time()
            count = fn()
            timings[label].append(time.perf_counter() - t)
            cpu.setdefault(label, []).append(time.process_time() - c)
            assert count == args.profiles, (label, count)
    # The three reads run in turn, round after round, so a burst of load from other processes on
    # a shared machine hits all three; the ratios are taken from the medians of the rounds (and,
    # for comparison with earlier figures, from the best rounds). The issue's baseline, "the same
    # read of plaintext columns without policy", fits both plaintext reads: both ratios are printed.
    best = {k: min(v) for k, v in timings.items()}
    middle = {k: statistics.median(v) for k, v in timings.items()}
    for label in timings:
        print(
            f"{label}: median of {args.repeat}: {middle[label]:.2f} s, best {best[label]:.2f} s "
            f"({args.profiles / best[label]:,.0f} profiles/s), CPU of this process {min(cpu[label]):.2f} s"
        )
    access = "access layer (decrypt + mask + audit)"
    print(
        f"ratio vs the same read path on plaintext: median {middle[access] / middle[same_path]:.2f}, "
        f"best {best[access] / best[same_path]:.2f} (target <= 1.5)"
    )
    minimal = "plaintext, no policy"
    print(
        f"ratio vs the minimal plaintext read (one process, no survivorship rules): "
        f"median {middle[access] / middle[minimal]:.2f}, best {best[access] / best[minimal]:.2f} (target <= 1.5)"
    )
    store.close()
    twin.close()
    shutil.rmtree(base)  # the plaintext copies (synthetic data) go with the run


if __name__ == "__main__":
    main()
