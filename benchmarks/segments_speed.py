"""Benchmark: 20 segments over 1,000,000 profiles and 10,000,000 events, end to end from the events frame.

By default the events and profile frames are synthesised directly in Polars,
the events' ``profile_id`` an Enum of the profile ids and their labels (event
type and name, currency, channel, store, category) Categorical, as the store
hands them over (``--string-ids``: plain strings for both, as before issue #7's
store changes; ``--string-labels``: Enum ids but String labels, the default
until 2026-12-05's third session);
everything after that is the production code
path of a refresh: computed attributes, the built-in classifiers (tags),
the event-window aggregates of all 20 segments (computed once, in the same
pass over the events as the attributes) and the 20 segment queries on DuckDB.
Writing memberships back to the store is not included.

    python benchmarks/segments_speed.py                 # 1M profiles, 10M events
    python benchmarks/segments_speed.py --profiles 100000 --events 1000000

Peak memory is the process's peak resident set size (``VmHWM``), reset after
the data is generated, so it is what the refresh itself needs on top.

``--from-store`` measures end to end from the system of record instead: the
same synthetic people and events are written (set-up, not timed) into a fresh
SQLite store in a temporary data directory, straight through the DB-API in
bulk (one source, one per-person data key and identity record per profile,
date of birth encrypted under it, events linked to that record), and then
``build_snapshot`` (events read, profiles read, attributes, classifiers) and
the evaluation of the 20 segments are timed, as a refresh runs them (writing
tags and memberships back is not included). ``--database-url`` points it at
an empty PostgreSQL database instead of SQLite; ``--store-dir`` keeps the store
(building 10 million events takes minutes) and reuses it on the next run.

    python benchmarks/segments_speed.py --from-store --profiles 100000 --events 1000000

``--touch-records N`` rewrites N random records unchanged before the refresh (not
timed), so the profile read brings the golden cache up to date for their
profiles (``cdp/access/_golden_cache.py``) instead of reading it as it is.
``--repeat N`` refreshes N times in the same process, as a long-running service
would: the first run pays a new process's first calls (imports, thread pools),
the later ones not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from cdp.access import AccessContext, CustomerStore, open_store
from cdp.segments.attributes import compute_attributes
from cdp.segments.classify import run_classifiers
from cdp.segments.classify.builtin import builtin_classifiers
from cdp.segments.config import TagsConfig
from cdp.segments.definition import Segment, event_specs
from cdp.segments.engine import SegmentEngine
from cdp.segments.service import build_snapshot, classifier_context
from cdp.settings import Settings

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
EVENT_NAMES = ["Order Completed", "Product Viewed", "Product Added", "Product", "Home", "Newsletter Subscribed"]
EVENT_WEIGHTS = [0.15, 0.35, 0.15, 0.20, 0.14, 0.01]
CATEGORIES = ["outdoor", "tech", "fashion", "home", "beauty", "sports", "travel", "food"]


def synthesise(profiles: int, events: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    import numpy as np

    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(EVENT_WEIGHTS)
    raw = pl.DataFrame(
        {
            # Skewed activity: a few heavy users, many light ones.
            "owner": (rng.pareto(1.5, events) * profiles / 20).astype(np.int64) % profiles,
            "kind": np.searchsorted(cumulative / cumulative[-1], rng.random(events)).astype(np.int64),
            "age_s": rng.integers(0, 730 * 86_400, events),
            "amount": np.round(rng.gamma(2.0, 40.0, events), 2),
            "coin": rng.random(events),
            "shift": rng.integers(0, 3, events),
        }
    )
    names = dict(enumerate(EVENT_NAMES))
    order = pl.col("kind") == 0
    store = order & (pl.col("coin") < 0.5)
    frame = raw.select(
        ("p_" + pl.col("owner").cast(pl.String).str.zfill(7)).alias("profile_id"),
        pl.when(pl.col("kind") == 3).then(pl.lit("page")).otherwise(pl.lit("track")).alias("event_type"),
        pl.col("kind").replace_strict(names, return_dtype=pl.String).alias("event_name"),
        (pl.lit(AS_OF) - pl.duration(seconds=pl.col("age_s"))).alias("occurred_at"),
        pl.when(order).then(pl.col("amount")).otherwise(None).alias("revenue"),
        pl.when(order)
        .then(
            (pl.col("owner") % 4).replace_strict(dict(enumerate(["USD", "EUR", "GBP", "CNY"])), return_dtype=pl.String)
        )
        .otherwise(None)
        .alias("currency"),
        pl.when(store).then(pl.lit("store")).otherwise(pl.lit("web")).alias("channel"),
        pl.when(store).then("S" + (pl.col("owner") % 300).cast(pl.String)).otherwise(None).alias("store_id"),
        ((pl.col("owner") + pl.col("shift")) % 8)
        .replace_strict(dict(enumerate(CATEGORIES)), return_dtype=pl.String)
        .alias("category"),
    )

    def pick(values: list[str | None]) -> pl.Expr:
        index = pl.Series(rng.integers(0, len(values), profiles))
        return pl.lit(index).replace_strict(dict(enumerate(values)), return_dtype=pl.String)

    people = pl.DataFrame({"n": np.arange(profiles)}).select(
        ("p_" + pl.col("n").cast(pl.String).str.zfill(7)).alias("profile_id"),
        pick(["US", "CN", "GB", "DE", "FR", None]).alias("country"),
        pick(["CA", "TX", "NY", "广东", "上海", "四川", None]).alias("state"),
        pick(["深圳", "Austin", None]).alias("city"),
        pick(["f", "male", None]).alias("gender"),
        pick(["18-24", "25-34", "35-44", "45-54", None]).alias("age_band"),
    )
    return frame, people


def segments() -> list[Segment]:
    def seg(name: str, where: dict[str, object]) -> Segment:
        return Segment(name, "", "profiling", where)

    order = "Order Completed"
    return [
        seg("s01_big_recent", {"event": order, "within_days": 90, "min_count": 3, "revenue_over": 100}),
        seg(
            "s02_active_high_value",
            {"all": [{"attribute": "orders_365d", "op": ">=", "value": 2}, {"tag": "value:high"}]},
        ),
        seg("s03_champions", {"tag": "rfm:champions"}),
        seg(
            "s04_at_risk_big",
            {"all": [{"tag": "rfm:at_risk"}, {"attribute": "revenue_lifetime", "op": ">", "value": 300}]},
        ),
        seg("s05_store_regulars", {"event": order, "within_days": 365, "min_count": 4, "channel": "store"}),
        seg(
            "s06_browsers_no_buy",
            {
                "all": [
                    {"event": "Product Viewed", "within_days": 30, "min_count": 3},
                    {"event": order, "within_days": 30, "max_count": 0},
                ]
            },
        ),
        seg(
            "s07_cart_abandon",
            {"all": [{"event": "Product Added", "within_days": 30}, {"not": {"event": order, "within_days": 30}}]},
        ),
        seg(
            "s08_tech_fans",
            {"any": [{"tag": "interest:tech"}, {"attribute": "favourite_category", "op": "=", "value": "tech"}]},
        ),
        seg(
            "s09_lapsed",
            {
                "all": [
                    {"attribute": "days_since_last_order", "op": "between", "value": [180, 365]},
                    {"attribute": "order_count", "op": ">=", "value": 2},
                ]
            },
        ),
        seg("s10_churn_warning", {"any": [{"tag": "churn_risk:warning"}, {"tag": "churn_risk:high"}]}),
        seg("s11_new_buyers", {"all": [{"tag": "lifecycle:new"}, {"event": order, "within_days": 30}]}),
        seg(
            "s12_cn_east",
            {
                "all": [
                    {"attribute": "cn_region", "op": "=", "value": "华东"},
                    {"attribute": "orders_90d", "op": ">=", "value": 1},
                ]
            },
        ),
        seg("s13_us_west_mid", {"all": [{"tag": "us_region:west"}, {"tag": "value:mid"}]}),
        seg("s14_big_spenders_year", {"event": order, "within_days": 365, "total_revenue_over": 1000}),
        seg(
            "s15_young_fashion",
            {"all": [{"attribute": "age_band", "op": "in", "value": ["18-24", "25-34"]}, {"tag": "interest:fashion"}]},
        ),
        seg("s16_omnichannel", {"attribute": "channel_count", "op": ">=", "value": 2}),
        seg("s17_between_windows", {"event": order, "between_days": [90, 180], "min_count": 2}),
        seg("s18_high_aov", {"attribute": "average_order_value", "op": ">", "value": 150}),
        seg("s19_vip_not_lapsed", {"all": [{"segment": "s01_big_recent"}, {"not": {"segment": "s09_lapsed"}}]}),
        seg(
            "s20_potential",
            {"any": [{"tag": "value:potential"}, {"tag": "rfm:potential_loyalists"}, {"tag": "rfm:promising"}]},
        ),
    ]


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _sqlite_time(column: str) -> pl.Expr:
    """SQLite's DATETIME text, as SQLAlchemy writes it (``YYYY-MM-DD HH:MM:SS.ffffff``, no offset)."""
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S%.6f")


def write_store(store: CustomerStore, events: pl.DataFrame, people: pl.DataFrame, *, chunk: int = 200_000) -> None:
    """Bench set-up: write ``people`` and ``events`` into the empty store in bulk, through the DB-API.

    One source, and per profile: a data key (in the key store), an identity record with the
    clear attributes and the date of birth encrypted under that key, an active profile linked
    to it; every event points at its owner's record. Product events carry properties (sku and
    price), as the connectors keep them. Not the ingestion path (that is ``ingest_speed.py``):
    only rows shaped as ingestion leaves them, fast enough to set up 10 million events.
    """
    import numpy as np

    sqlite = store.engine.dialect.name == "sqlite"
    stamp = datetime(2026, 10, 1, tzinfo=UTC)
    rng = np.random.default_rng(11)
    suffix = pl.col("profile_id").str.slice(2)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sources (name, kind, created_at) VALUES (%s)" % ("?, ?, ?" if sqlite else "%s, %s, %s"),
            ("bench", "file", stamp.isoformat(" ") if sqlite else stamp),
        )
    params = "?" if sqlite else "%s"

    def insert(table: str, columns: list[str], frame: pl.DataFrame) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([params] * len(columns))})"
        for start in range(0, frame.height, chunk):
            part = frame.slice(start, chunk)
            with store.engine.begin() as conn:
                conn.exec_driver_sql(sql, part.rows())

    when: Any = stamp.isoformat(" ") if sqlite else stamp
    births = pl.lit(datetime(1960, 1, 1)) + pl.duration(days=pl.Series(rng.integers(0, 46 * 365, people.height)))
    dates = people.select(births.dt.strftime("%Y-%m-%d").alias("dob"))["dob"].to_list()
    for start in range(0, people.height, chunk):
        part = people.slice(start, chunk)
        keys = store.create_keys(part.height)
        record_ids = part.select("r_" + suffix)["literal"].to_list()
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                f"INSERT INTO subject_keys (id, kek_id, created_at) VALUES ({params}, {params}, {params})",
                [(key_id, kek_id, when) for key_id, _, kek_id in keys],
            )
        encrypted = [
            cipher.encrypt(born, record_id=record_id, field="date_of_birth")
            for (_, cipher, _), record_id, born in zip(
                keys, record_ids, dates[start : start + part.height], strict=True
            )
        ]
        rows = part.select(
            ("r_" + suffix).alias("id"),
            pl.lit("bench").alias("source"),
            pl.lit("people").alias("stream"),
            suffix.alias("source_record_id"),
            ("i_" + suffix).alias("idempotency_key"),
            pl.lit(when).alias("received_at"),
            pl.Series("key_id", [k[0] for k in keys]),
            pl.lit("identity").alias("kind"),
            pl.Series("date_of_birth_enc", encrypted, dtype=pl.Binary),
            "city",
            "state",
            "country",
            "gender",
        )
        insert("records", rows.columns, rows)
    profiles = people.select(
        pl.col("profile_id").alias("id"), pl.lit(when).alias("created_at"), pl.lit(when).alias("updated_at")
    )
    insert("profiles", profiles.columns, profiles)
    links = people.select(
        ("r_" + suffix).alias("record_id"),
        pl.col("profile_id"),
        pl.lit(when).alias("linked_at"),
        pl.lit("bench").alias("reason"),
    )
    insert("record_links", links.columns, links)
    product = pl.col("event_name").is_in(["Product Viewed", "Product Added"])
    rows = events.with_row_index("n").select(
        ("e_" + pl.col("n").cast(pl.String)).alias("id"),
        ("r_" + suffix).alias("record_id"),
        pl.lit("bench").alias("source"),
        "event_type",
        "event_name",
        _sqlite_time("occurred_at") if sqlite else pl.col("occurred_at"),
        "profile_id",
        "revenue",
        "currency",
        "channel",
        "store_id",
        "category",
        pl.when(product)
        .then(pl.format('{{"sku": "SKU{}", "price": {}}}', pl.col("n") % 5000, (pl.col("n") % 200) + 0.99))
        .alias("properties"),
    )
    insert("events", rows.columns, rows)


def from_store(args: argparse.Namespace) -> None:
    """Time a refresh's ``build_snapshot`` and the 20 segments, reading from a store (see the docstring)."""
    with contextlib.ExitStack() as stack:
        folder = args.store_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="cdp-segments-bench-"))
        url = {"database_url": args.database_url} if args.database_url else {}
        store = open_store(Settings(data_dir=Path(folder), **url), migrate=True)
        stack.callback(store.close)
        held = store.counts(AccessContext("bench", "data_engineer", "operations"))
        if held["events"]:  # --store-dir of an earlier run: measured as it is
            print(f"reusing the store in {folder}: {held['profiles']:,} profiles, {held['events']:,} events")
        else:
            started = time.perf_counter()
            events, people = synthesise(args.profiles, args.events)
            people = people.drop("age_band")  # derived from the encrypted date of birth on read
            write_store(store, events, people)
            del events, people
            print(
                f"wrote {args.profiles:,} profiles, {args.events:,} events to the store in "
                f"{time.perf_counter() - started:.1f}s ({store.engine.dialect.name})"
            )
        if args.touch_records:
            touch_records(store, args.touch_records)
        for run in range(args.repeat):
            if args.repeat > 1:
                print(f"-- refresh {run + 1} of {args.repeat} in this process")
            measure_refresh(store)


def touch_records(store: CustomerStore, count: int) -> None:
    """Rewrite ``count`` random records unchanged (set-up, not timed): on SQLite the golden
    cache's triggers mark their profiles out of date, so the profile read recomputes them."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE records SET city = city WHERE id IN (SELECT id FROM records ORDER BY random() LIMIT ?)",
            (count,),
        )
    print(f"rewrote {count:,} records unchanged")


def measure_refresh(store: CustomerStore) -> None:
    import gc

    gc.collect()
    print(f"cores: {os.cpu_count()}, polars threads: {pl.thread_pool_size()}")
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[0:3]}")
    reset_peak()
    timings: dict[str, tuple[float, float]] = {}

    def timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return call(*a, **k)
            finally:
                timings[name] = (time.perf_counter() - wall, time.process_time() - cpu)

        return run

    before, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    store.scan_events = timed("events read + attribute pass (scan_events)", store.scan_events)  # type: ignore[method-assign]
    store.profile_frame = timed("read profiles (profile_frame)", store.profile_frame)  # type: ignore[method-assign]
    definitions = segments()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        snap = build_snapshot(
            store,
            classifier_context("profiling"),
            as_of=AS_OF,
            config=TagsConfig(),
            classifiers=builtin_classifiers(),
            segments=definitions,
        )
    finally:  # the class's methods again (a --repeat run wraps them anew)
        del store.scan_events, store.profile_frame
    built = (time.perf_counter() - wall, time.process_time() - cpu)
    reads = [timings[k] for k in list(timings)]
    timings["attributes frame, classifiers, tags (rest of build_snapshot)"] = (
        built[0] - sum(r[0] for r in reads),
        built[1] - sum(r[1] for r in reads),
    )
    members = timed("20 segments (engine.evaluate)", snap.engine.evaluate)(definitions)
    snap.engine.close()
    after, children_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{'step':<54} {'wall':>7} {'CPU':>7}")
    for name, (w, c) in timings.items():
        print(f"{name:<54} {w:6.2f}s {c:6.2f}s")
    wall, cpu = (sum(v[i] for v in timings.values()) for i in (0, 1))
    print(f"{'total, stored events -> tags and memberships':<54} {wall:6.2f}s {cpu:6.2f}s")
    print(f"load average at end: {Path('/proc/loadavg').read_text().split()[0:3]}")
    # Faulting in fresh memory is much of the CPU on a VM whose memory its host backs lazily.
    print(
        f"this process: {after.ru_minflt - before.ru_minflt:,} page faults,"
        f" user {after.ru_utime - before.ru_utime:.2f}s, system {after.ru_stime - before.ru_stime:.2f}s;"
        " forked children:"
        f" {children_after.ru_minflt - children.ru_minflt:,} faults,"
        f" {children_after.ru_utime - children.ru_utime + children_after.ru_stime - children.ru_stime:.2f}s CPU"
    )
    print(
        f"events counted: {int(snap.attributes['event_count'].sum()):,}; profiles: {snap.attributes.height:,}; "
        f"peak RSS during the refresh: {peak_rss_mib():,.0f} MiB"
    )
    for name, ids in members.items():
        print(f"  {name:<24} {ids.len():>9,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--from-store", action="store_true", help="end to end from a store (see the docstring)")
    parser.add_argument("--string-ids", action="store_true", help="in memory: string profile ids and labels")
    parser.add_argument("--string-labels", action="store_true", help="in memory: Enum ids, String labels")
    parser.add_argument("--database-url", help="with --from-store: an empty PostgreSQL database instead of SQLite")
    parser.add_argument("--store-dir", help="with --from-store: build the store here, or reuse the one built there")
    parser.add_argument(
        "--touch-records", type=int, default=0, help="with --from-store: rewrite N random records first (untimed)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="with --from-store: refresh N times in this process (later runs warm)"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat: at least 1 refresh")
    if args.from_store:
        from_store(args)
        return
    started = time.perf_counter()
    events, people = synthesise(args.profiles, args.events)
    if not args.string_ids:  # as CustomerStore.events_frame hands them over
        events = events.with_columns(pl.col("profile_id").cast(pl.Enum(people["profile_id"].sort())))
        if not args.string_labels:
            labels = ("event_type", "event_name", "currency", "channel", "store_id", "category")
            events = events.with_columns(pl.col(c).cast(pl.Categorical) for c in labels)
    print(f"synthesised {people.height:,} profiles, {events.height:,} events in {time.perf_counter() - started:.1f}s")
    print(f"cores: {os.cpu_count()}, polars threads: {pl.thread_pool_size()}")
    reset_peak()
    config = TagsConfig()
    timings: dict[str, tuple[float, float]] = {}  # step -> (wall seconds, CPU seconds of this process)

    def step(name: str, started: tuple[float, float]) -> None:
        timings[name] = (time.perf_counter() - started[0], time.process_time() - started[1])

    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    t = now()
    definitions = segments()
    specs = event_specs(s.where for s in definitions)  # as a refresh does: one pass over the events
    computed = compute_attributes(events, as_of=AS_OF, config=config, event_specs=specs, profiles=people["profile_id"])
    attributes = pl.concat([people, computed.drop("profile_id")], how="horizontal")
    step("attributes + event-window aggregates (one pass)", t)

    t = now()
    classified = run_classifiers(attributes, builtin_classifiers(), config)
    step("classifiers (tags as columns)", t)

    t = now()
    engine = SegmentEngine(
        classified.attributes, events, classified.tag_rows, as_of=AS_OF, config=config, tag_frame=classified.tag_frame
    )
    members = engine.evaluate(definitions)
    engine.close()
    step("20 segments (tag flags + one DuckDB query per level)", t)

    print(f"{'step':<54} {'wall':>7} {'CPU':>7}")
    for name, (wall, cpu) in timings.items():
        print(f"{name:<54} {wall:6.2f}s {cpu:6.2f}s")
    wall, cpu = (sum(v[i] for v in timings.values()) for i in (0, 1))
    print(f"{'total, events frame -> tags and memberships':<54} {wall:6.2f}s {cpu:6.2f}s")
    print(f"load average: {Path('/proc/loadavg').read_text().split()[0:3]}")
    peak = peak_rss_mib()  # before the tag rows are built below (a refresh builds them only to write them)
    print(f"tags held: {classified.tags.height:,}; peak RSS during the refresh: {peak:,.0f} MiB")
    for name, ids in members.items():
        print(f"  {name:<24} {ids.len():>9,}")


if __name__ == "__main__":
    main()
