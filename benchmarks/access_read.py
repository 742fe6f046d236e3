"""Reading N profiles through the access layer (policy, decryption, masking, consent filter,
audit) versus the same read of plaintext columns with no policy.

The plaintext baseline reads the same rows from a plaintext copy of the records table (made
for the benchmark only, in a separate SQLite file) and assembles the same profile dicts
(group by profile, most recent value per field) in plain Python.

    python benchmarks/access_read.py --profiles 100000
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cdp.access import AccessContext, open_store
from cdp.access._profile_rows import _CLEAR_AT as CLEAR_AT
from cdp.access.context import connector_context, identity_context
from cdp.model import EventData, IncomingRecord
from cdp.settings import Settings

FIELDS = ("given_name", "family_name", "email", "phone", "city", "country")
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
    plaintext_of = {(by_source_id[r.source_record_id], name): r.identity[name] for r in records for name in FIELDS}

    def read_same_path_plaintext() -> int:
        """The same read path (SQL, grouping, survivorship) with decryption replaced by a plaintext
        lookup (in both the single-record decoder and the per-field readers), no masking and no
        consent filter: what the read costs without the privacy layer."""
        original = store._field_readers

        def plaintext_readers(needed: Any, identity_fields: Any, cipher_of: Any) -> list[tuple[str, Any]]:
            readers = original(needed, identity_fields, cipher_of)
            return [
                (name, (lambda row, name=name: plaintext_of.get((row[1], name))) if name in identity_fields else read)
                for name, read in readers
            ]

        def plaintext_decoder(needed: Any, identity_fields: Any, _data_key_of: Any) -> Any:
            encrypted = [name for name in needed if name in identity_fields]
            clear = [(name, CLEAR_AT[name]) for name in needed if name not in identity_fields]

            def decode(row: Any) -> dict[str, str]:
                out = {name: v for name in encrypted if (v := plaintext_of.get((row[1], name)))}
                for name, position in clear:  # as in the real decoder
                    value = row[position]
                    if value:
                        out[name] = value if value.__class__ is str else str(value)
                return out

            return decode

        store._field_readers = plaintext_readers  # type: ignore[method-assign]
        store._row_decoder = plaintext_decoder  # type: ignore[method-assign]
        store._data_keys = lambda _key_ids: lambda _key_id: None  # type: ignore[method-assign]
        try:
            return len(store.read_profiles(officer, FIELDS))
        finally:
            del store._field_readers
            del store._row_decoder
            del store._data_keys

    def read_access() -> int:
        return len(store.read_profiles(marketer, FIELDS))

    same_path = "same read path, plaintext, no masking or consent filter"
    cpu: dict[str, list[float]] = {}
    timings: dict[str, list[float]] = {
        "plaintext, no policy": [],
        same_path: [],
        "access layer (decrypt + mask + audit)": [],
    }
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


if __name__ == "__main__":
    main()
