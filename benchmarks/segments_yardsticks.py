"""Benchmark: the issue's two yardsticks for segments, measured on this machine.

Issue #7 gives two figures "for scale" next to its 2 s target: one plain DuckDB
query per segment straight over the raw events takes about 10 s; computing the
shared event-window aggregates once and filtering them takes about 1 s. This
script measures both on the events of ``segments_speed.py`` (same generator,
same seed), so the refresh's own figures can be read against the machine they
were measured on: a slower or faster VM moves all three together.

The events are loaded into an in-memory DuckDB table first (not timed: the
yardsticks start from events already in the engine). The conditions are the
event-history and attribute parts of the benchmark's segments that can be
written over raw events alone (tags need the classifiers and are left out),
fourteen in all; both ways must give the same member counts, which the script
checks.

    python benchmarks/segments_yardsticks.py                   # 1M profiles, 10M events
    python benchmarks/segments_yardsticks.py --profiles 100000 --events 1000000
"""

from __future__ import annotations

import argparse
import re
import time

import duckdb
from segments_speed import AS_OF, synthesise  # the script beside this one (its folder is on sys.path)

NOW = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"
ORDER = "event_name = 'Order Completed'"


def since(days: int) -> str:
    return f"occurred_at >= {NOW} - INTERVAL {days} DAY"


# Per-profile conditions (a HAVING clause over one profile's events), named after the segment they come from.
CONDITIONS = {
    "s01 big recent": f"count(*) FILTER ({ORDER} AND {since(90)} AND revenue > 100) >= 3",
    "s02 active (orders_365d >= 2)": f"count(*) FILTER ({ORDER} AND {since(365)}) >= 2",
    "s04 big (revenue_lifetime > 300)": f"sum(revenue) FILTER ({ORDER}) > 300",
    "s05 store regulars": f"count(*) FILTER ({ORDER} AND {since(365)} AND channel = 'store') >= 4",
    "s06 browsers, no buy": (
        f"count(*) FILTER (event_name = 'Product Viewed' AND {since(30)}) >= 3"
        f" AND count(*) FILTER ({ORDER} AND {since(30)}) = 0"
    ),
    "s07 cart abandon": (
        f"count(*) FILTER (event_name = 'Product Added' AND {since(30)}) >= 1"
        f" AND count(*) FILTER ({ORDER} AND {since(30)}) = 0"
    ),
    "s09 lapsed": (
        f"max(occurred_at) FILTER ({ORDER}) BETWEEN {NOW} - INTERVAL 365 DAY AND {NOW} - INTERVAL 180 DAY"
        f" AND count(*) FILTER ({ORDER}) >= 2"
    ),
    "s11 new buyers (first seen in 30 days)": f"min(occurred_at) >= {NOW} - INTERVAL 30 DAY"
    f" AND count(*) FILTER ({ORDER} AND {since(30)}) >= 1",
    "s12 (orders_90d >= 1)": f"count(*) FILTER ({ORDER} AND {since(90)}) >= 1",
    "s14 big spenders, year": f"sum(revenue) FILTER ({ORDER} AND {since(365)}) > 1000",
    "s16 omnichannel": "count(DISTINCT channel) >= 2",
    "s17 between windows": (
        f"count(*) FILTER ({ORDER} AND occurred_at < {NOW} - INTERVAL 90 DAY AND {since(180)}) >= 2"
    ),
    "s18 high AOV": f"avg(revenue) FILTER ({ORDER}) > 150",
    "s19 part (s01 and not s09)": f"count(*) FILTER ({ORDER} AND {since(90)} AND revenue > 100) >= 3"
    f" AND NOT coalesce(max(occurred_at) FILTER ({ORDER}) BETWEEN {NOW} - INTERVAL 365 DAY"
    f" AND {NOW} - INTERVAL 180 DAY AND count(*) FILTER ({ORDER}) >= 2, false)",
}
AGGREGATE = re.compile(
    r"(count\(\*\) FILTER \([^)]*\)|sum\(revenue\) FILTER \([^)]*\)|max\(occurred_at\) FILTER \([^)]*\)"
    r"|min\(occurred_at\)|avg\(revenue\) FILTER \([^)]*\)|count\(DISTINCT channel\))"
)


def shared_form() -> tuple[list[str], dict[str, str]]:
    """(the distinct aggregates as SELECT items, each condition over their columns)."""
    names: dict[str, str] = {}

    def column(match: re.Match[str]) -> str:
        return names.setdefault(match.group(1), f"a{len(names)}")

    wheres = {key: AGGREGATE.sub(column, condition) for key, condition in CONDITIONS.items()}
    return [f"{expr} AS {name}" for expr, name in names.items()], wheres


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    events, _ = synthesise(args.profiles, args.events)
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.register("raw", events.to_arrow())
    con.execute("CREATE TABLE events AS SELECT * FROM raw")
    con.unregister("raw")
    del events
    print(f"{args.events:,} events of {args.profiles:,} profiles in DuckDB, {args.threads} threads")
    selects, wheres = shared_form()
    for run in range(args.repeat):
        started = time.perf_counter()
        each: dict[str, int] = {}
        for key, condition in CONDITIONS.items():
            sql = f"SELECT count(*) FROM (SELECT profile_id FROM events GROUP BY profile_id HAVING {condition})"
            each[key] = con.execute(sql).fetchall()[0][0]
        per_segment = time.perf_counter() - started
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE shared AS SELECT profile_id, {', '.join(selects)} FROM events GROUP BY 1")
        aggregated = time.perf_counter() - started
        shared = {k: con.execute(f"SELECT count(*) FROM shared WHERE {w}").fetchall()[0][0] for k, w in wheres.items()}
        total = time.perf_counter() - started
        if shared != each:
            raise SystemExit(f"the two ways disagree: {each} against {shared}")
        print(
            f"run {run + 1}: one query per condition over the raw events {per_segment:.2f}s"
            f" ({per_segment / len(CONDITIONS):.2f}s each, x20 = {per_segment / len(CONDITIONS) * 20:.1f}s);"
            f" {len(selects)} shared aggregates once {aggregated:.2f}s, with the {len(wheres)} filters {total:.2f}s"
        )
    for key, count in each.items():
        print(f"  {key:<40} {count:>9,}")


if __name__ == "__main__":
    main()
