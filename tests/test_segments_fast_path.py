"""The fast refresh path (numpy attributes, tag columns, one query per level) against straightforward references.

Attributes are checked against a row-by-row Python computation on random
events (edge cases: events after ``as_of``, events of unknown profiles,
null channels, categories and revenue, other currencies, window edges);
tags held as columns against the same tags as rows; memberships from the
one-query-per-level evaluation against one query per segment.
"""

from __future__ import annotations

import itertools
import mmap
import random
import resource
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import pytest

from cdp.access import _event_scan as event_scan
from cdp.access._event_scan import EventBatch, LabelCodes, LabelTable, coded_labels, frame_batches
from cdp.segments import engine as engine_module
from cdp.segments._event_pass import PAGE_BYTES, column_totals, favourite_ranks, touch_pages
from cdp.segments.attributes import (
    ORDER_EVENT,
    PRODUCT_EVENTS,
    WINDOWS,
    _positions,
    compute_attributes,
    counted_lists,
    label_lists,
    measure_events,
)
from cdp.segments.classify import run_classifiers
from cdp.segments.classify.builtin import builtin_classifiers
from cdp.segments.config import TagsConfig
from cdp.segments.definition import EventSpec, Segment, compile_segment, event_specs, spec_columns_read
from cdp.segments.engine import SegmentEngine
from cdp.segments.measures import EventMeasures, _Registry

NOW = datetime(2026, 11, 1, tzinfo=UTC)
NAMES = (ORDER_EVENT, "Product Viewed", "Product Added", "Home", "Signed Up", "Wishlist Added", None)
SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "profile_id": pl.String,
    "event_type": pl.String,
    "event_name": pl.String,
    "occurred_at": pl.Datetime("us", "UTC"),
    "revenue": pl.Float64,
    "currency": pl.String,
    "channel": pl.String,
    "store_id": pl.String,
    "category": pl.String,
}
SEGMENTS = [
    Segment("big", "", "profiling", {"event": ORDER_EVENT, "within_days": 90, "min_count": 2, "revenue_over": 40}),
    Segment("store", "", "profiling", {"event": ORDER_EVENT, "within_days": 365, "channel": "store"}),
    Segment("views", "", "profiling", {"event": "Product Viewed", "between_days": [30, 90], "category": "tech"}),
    Segment(
        "value", "", "profiling", {"any": [{"tag": "value:high"}, {"tag": "rfm:champions"}, {"tag": "interest:tech"}]}
    ),
    Segment("mixed", "", "profiling", {"all": [{"segment": "big"}, {"not": {"segment": "value"}}]}),
    Segment("spend", "", "profiling", {"event": ORDER_EVENT, "within_days": 365, "total_revenue_over": 300}),
]


def random_data(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = random.Random(seed)
    people = [f"p{i:03d}" for i in range(120)]
    rows: list[dict[str, Any]] = []
    for _ in range(2500):
        name = rng.choice(NAMES)
        days = rng.choice([rng.uniform(-20, 800), 30.0, 90.0, 180.0, 365.0])  # some exactly on a window edge
        rows.append(
            {
                "profile_id": rng.choice([*people[:100], "stranger"]),  # p100-p119 have no events
                "event_type": rng.choice(["track", "track", "page", "identify", None]),
                "event_name": name,
                "occurred_at": NOW - timedelta(days=days),
                "revenue": rng.choice([None, round(rng.uniform(1, 300), 2)]) if name == ORDER_EVENT else None,
                "currency": rng.choice(["USD", "eur", "GBP", "XXX", None]),
                "channel": rng.choice(["web", "store", "app", None]),
                "store_id": rng.choice([None, None, "S1", "S2", "S3"]),
                "category": rng.choice(["tech", "food", "home", "unlisted", None]),
            }
        )
    profiles = pl.DataFrame({"profile_id": people, "country": [rng.choice(["US", "CN", None]) for _ in people]})
    return pl.DataFrame(rows, schema=SCHEMA), profiles


def reference_attributes(events: pl.DataFrame, specs: list[EventSpec], config: TagsConfig) -> dict[str, dict[str, Any]]:
    """Each profile's attributes, computed event by event in plain Python."""
    rates = {k.upper(): v for k, v in config.currency.rates.items()}
    found: dict[str, list[dict[str, Any]]] = {}
    for e in events.sort("occurred_at").iter_rows(named=True):
        if e["occurred_at"] <= NOW:
            found.setdefault(e["profile_id"], []).append(e)
    out: dict[str, dict[str, Any]] = {}
    for pid, rows in found.items():

        def age(e: dict[str, Any]) -> timedelta:
            at: datetime = e["occurred_at"]
            return NOW - at

        def amount(e: dict[str, Any]) -> float:
            return (e["revenue"] or 0.0) * rates.get((e["currency"] or "").upper(), 1.0)

        orders = [e for e in rows if e["event_name"] == ORDER_EVENT]
        window = timedelta(days=config.interests.window_days)
        products = [e for e in rows if e["event_name"] in PRODUCT_EVENTS and age(e) <= window]
        order_channels = Counter(e["channel"] for e in orders if e["channel"] is not None)
        browsed = Counter(e["category"] for e in products if e["category"] is not None)
        stores = Counter(e["store_id"] for e in rows if e["store_id"] is not None)
        row: dict[str, Any] = {
            "first_seen": min(e["occurred_at"] for e in rows),
            "last_seen": max(e["occurred_at"] for e in rows),
            "first_order_at": min((e["occurred_at"] for e in orders), default=None),
            "last_order_at": max((e["occurred_at"] for e in orders), default=None),
            "order_count": len(orders),
            "revenue_lifetime": sum(amount(e) for e in orders),
            "event_count": sum(1 for e in rows if e["event_type"] not in (None, "identify")),
            "orders_prev_90d": sum(1 for e in orders if timedelta(days=90) < age(e) <= timedelta(days=180)),
            "preferred_channel": min(order_channels, key=lambda c: (-order_channels[c], c)) if order_channels else None,
            "favourite_category": min(browsed, key=lambda c: (-browsed[c], c)) if browsed else None,
            "browsed_categories": sorted(
                c
                for c, n in browsed.items()
                if n >= config.interests.min_browsing_events and c in config.interests.categories
            ),
            "channel_count": len({e["channel"] for e in rows if e["channel"] is not None}),
            "favourite_store": min(stores, key=lambda s: (-stores[s], s)) if stores else None,
        }
        for days in WINDOWS:
            within = [e for e in orders if age(e) <= timedelta(days=days)]
            row[f"orders_{days}d"], row[f"revenue_{days}d"] = len(within), sum(amount(e) for e in within)
        for spec in specs:
            hits = [
                e
                for e in rows
                if e["event_name"] == spec.event
                and age(e) <= timedelta(days=spec.start_days)
                and (not spec.end_days or age(e) > timedelta(days=spec.end_days))
                and (spec.revenue_over is None or amount(e) > spec.revenue_over)
                and (spec.channel is None or e["channel"] == spec.channel)
                and (spec.category is None or e["category"] == spec.category)
            ]
            row[spec.count_column] = len(hits)
            if spec.total:  # a total revenue is computed only where a definition reads it
                row[spec.revenue_column] = sum(amount(e) for e in hits)
        out[pid] = row
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_attributes_match_an_event_by_event_reference(seed: int) -> None:
    events, profiles = random_data(seed)
    config = TagsConfig()
    specs = event_specs(s.where for s in SEGMENTS)
    expected = reference_attributes(events, specs, config)
    aligned = compute_attributes(events, as_of=NOW, config=config, event_specs=specs, profiles=profiles["profile_id"])
    assert aligned["profile_id"].to_list() == profiles["profile_id"].to_list()
    plain = compute_attributes(events, as_of=NOW, config=config, event_specs=specs)
    assert plain["profile_id"].to_list() == sorted(expected)  # only profiles with events, sorted
    for frame in (aligned, plain):
        for got in frame.iter_rows(named=True):
            want = expected.get(got["profile_id"])
            if want is None:  # no events up to NOW: every computed column is null, the event history 0
                history = {c for s in specs for c in spec_columns_read(s)}
                assert all(v is None for k, v in got.items() if k != "profile_id" and k not in history), got[
                    "profile_id"
                ]
                assert all(got[c] == 0 for c in history), got["profile_id"]
                continue
            for column, value in want.items():
                assert got[column] == pytest.approx(value, rel=1e-12), (got["profile_id"], column)
    assert "stranger" not in aligned["profile_id"].to_list()
    # Every count, and the total revenue of the one measure whose total a segment reads only.
    assert [s.total for s in specs].count(True) == 1
    computed = {c for c in aligned.columns if c.startswith("__ev_")}
    assert computed == {c for s in specs for c in spec_columns_read(s)}
    assert all(aligned[s.count_column].dtype == pl.Int32 for s in specs)


def test_a_total_not_computed_with_the_attributes_is_computed_when_a_segment_reads_it() -> None:
    """The pass computes a measure's total revenue only where a definition of the refresh reads it;
    a segment evaluated later that reads it gets it from the events, and the same members."""
    events, profiles = random_data(1)
    count_only = Segment("recent", "", "profiling", {"event": ORDER_EVENT, "within_days": 365, "min_count": 2})
    spend = Segment("spend", "", "profiling", {"event": ORDER_EVENT, "within_days": 365, "total_revenue_over": 300})
    specs = event_specs([count_only.where])
    assert [s.total for s in specs] == [False] and specs == event_specs([spend.where])  # one measure
    computed = compute_attributes(
        events, as_of=NOW, config=TagsConfig(), event_specs=specs, profiles=profiles["profile_id"]
    )
    assert specs[0].count_column in computed.columns and specs[0].revenue_column not in computed.columns
    no_tags = pl.DataFrame(schema={"profile_id": pl.String, "tag": pl.String})
    fast = SegmentEngine(
        pl.concat([profiles, computed.drop("profile_id")], how="horizontal"), events, no_tags, as_of=NOW
    )
    plain = SegmentEngine(profiles, events, no_tags, as_of=NOW)  # every measure from the events
    try:
        assert fast.members(count_only) == plain.members(count_only)
        assert fast.members(spend) == plain.members(spend)
        assert fast.members(count_only) == plain.members(count_only)  # the count kept as it was
        assert fast.members(spend) and fast.members(spend) != fast.members(count_only)
    finally:
        fast.close()
        plain.close()


@pytest.mark.parametrize(("seed", "threads"), [(1, 1), (2, 1), (1, 2), (2, 3)])
def test_tag_columns_and_one_query_per_level_match_tag_rows_and_one_query_per_segment(
    seed: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``threads`` > 1: each level's segments are split between that many queries run at once
    (as on a large base), which must give what one query per segment gives."""
    monkeypatch.setattr(engine_module, "QUERY_THREADS", threads)
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_ROWS", 0 if threads > 1 else 10**9)
    events, profiles = random_data(seed)
    config = TagsConfig()
    specs = event_specs(s.where for s in SEGMENTS)
    computed = compute_attributes(events, as_of=NOW, config=config, event_specs=specs, profiles=profiles["profile_id"])
    classified = run_classifiers(
        pl.concat([profiles, computed.drop("profile_id")], how="horizontal"), builtin_classifiers(), config
    )
    rows = classified.tags
    assert classified.tag_frame is not None and rows.height > 0
    fast = SegmentEngine(classified.attributes, events, classified.tag_rows, as_of=NOW, tag_frame=classified.tag_frame)
    slow = SegmentEngine(classified.attributes, events, rows, as_of=NOW)  # every tag as a (profile_id, tag) row
    try:
        for tag in sorted(classified.catalogue):
            segment = Segment("t", "", "profiling", {"tag": tag})
            holders = sorted(rows.filter(pl.col("tag") == tag)["profile_id"].to_list())
            assert fast.members(segment) == holders == slow.members(segment), tag
        together = fast.evaluate(SEGMENTS)
        names = {s.name for s in SEGMENTS}
        for segment in SEGMENTS:  # referenced segments come first in SEGMENTS
            alone = slow.run(compile_segment(segment, slow.columns, segments=names))
            if segment.name in ("big", "value"):
                slow.remember(segment.name, alone)
            assert together[segment.name].to_list() == alone.to_list(), segment.name
        assert sum(ids.len() for ids in together.values()) > 0
    finally:
        fast.close()
        slow.close()


@pytest.mark.parametrize("width", [0, 1, 7, 63, 64, 65, 150])
def test_channels_and_order_channels_per_profile_for_few_and_many_labels(width: int) -> None:
    """Distinct channels (a bit per channel, several 64-bit words past 64) and the preferred channel."""
    rng = np.random.default_rng(width)
    people = [f"p{i:02d}" for i in range(40)]
    owner = rng.integers(0, 40, 3000)
    channel = rng.integers(-1, width, 3000) if width else np.full(3000, -1)
    ordered = rng.random(3000) < 0.3
    events = pl.DataFrame(
        {
            "profile_id": [people[i] for i in owner],
            "event_type": ["track"] * 3000,
            "event_name": [ORDER_EVENT if o else "Home" for o in ordered],
            "occurred_at": [NOW - timedelta(days=1)] * 3000,
            "revenue": [1.0] * 3000,
            "currency": ["USD"] * 3000,
            "channel": [f"c{c:03d}" if c >= 0 else None for c in channel],
            "store_id": [None] * 3000,
            "category": [None] * 3000,
        },
        schema=SCHEMA,
    )
    found = compute_attributes(events, as_of=NOW, config=TagsConfig(), profiles=pl.Series(people))
    for i, pid in enumerate(people):
        mine = [int(c) for o, c in zip(owner, channel, strict=True) if o == i and c >= 0]
        bought = Counter(int(c) for o, c, b in zip(owner, channel, ordered, strict=True) if o == i and c >= 0 and b)
        assert found["channel_count"][i] == len(set(mine)), pid
        best = min(bought, key=lambda c: (-bought[c], c)) if bought else None
        assert found["preferred_channel"][i] == (None if best is None else f"c{best:03d}"), pid


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_attributes_from_categorical_labels_match_the_string_labels(seed: int) -> None:
    """As the store hands events over (labels Categorical, ids an Enum): the same attributes as from strings."""
    events, profiles = random_data(seed)
    config = TagsConfig()
    specs = [*event_specs(s.where for s in SEGMENTS), EventSpec("Nobody Does This", 30, channel="nowhere")]
    ids = pl.Enum(events["profile_id"].unique().sort())
    labels = ["event_type", "event_name", "currency", "channel", "store_id", "category"]
    categorical = events.with_columns(pl.col("profile_id").cast(ids), *(pl.col(c).cast(pl.Categorical) for c in labels))
    for keys in (profiles["profile_id"], None):
        plain = compute_attributes(events, as_of=NOW, config=config, event_specs=specs, profiles=keys)
        coded = compute_attributes(categorical, as_of=NOW, config=config, event_specs=specs, profiles=keys)
        assert coded.columns == plain.columns
        for column in plain.columns:
            assert coded[column].cast(plain[column].dtype).equals(plain[column]), column


@pytest.mark.parametrize("seed", [1, 2])
def test_attributes_of_a_frame_in_uneven_chunks_are_those_of_the_whole(seed: int) -> None:
    """The compiled pass takes the events chunk by chunk (as the store's blocks come); chunks of
    any size, and columns chunked differently from each other, give the same attributes."""
    events, profiles = random_data(seed)
    config = TagsConfig()
    specs = event_specs(s.where for s in SEGMENTS)
    labels = ["event_type", "event_name", "currency", "channel", "store_id", "category"]
    # No event after NOW nor of an unknown profile: the events are then not filtered (copied) on the
    # way, so the pass sees these chunks as they are.
    known = (pl.col("occurred_at") <= NOW) & pl.col("profile_id").is_in(profiles["profile_id"].implode())
    events = events.filter(known).with_columns(pl.col(c).cast(pl.Categorical) for c in labels)
    cuts = [0, 1, 2, 700, 701, 1900, events.height]
    chunked = pl.concat([events.slice(a, b - a) for a, b in itertools.pairwise(cuts)], rechunk=False)
    # One label column and the revenue in other chunks than the rest: batches then cross their chunk ends.
    other = pl.concat([events.slice(0, 1234), events.slice(1234)], rechunk=False)
    chunked = chunked.with_columns(other["channel"], other["revenue"])
    assert chunked["occurred_at"].n_chunks() == len(cuts) - 1 and chunked["channel"].n_chunks() == 2
    whole = compute_attributes(events, as_of=NOW, config=config, event_specs=specs, profiles=profiles["profile_id"])
    parts = compute_attributes(chunked, as_of=NOW, config=config, event_specs=specs, profiles=profiles["profile_id"])
    assert parts.columns == whole.columns
    for column in whole.columns:
        assert parts[column].equals(whole[column]), column


def raw_labels(series: pl.Series) -> tuple[list[int], list[int], list[str]]:
    """(each row's code as the pass reads it, each code's slot (-1: null), the labels by slot): one batch."""
    registry = _Registry()
    codes, table = registry.codes(coded_labels(series.alias("channel").to_frame())["channel"], series.len())
    return codes.tolist(), table.tolist(), registry.labels


@pytest.mark.parametrize("kind", ["string", "categorical", "enum"])
def test_raw_label_codes_of_string_categorical_and_enum_columns(kind: str) -> None:
    rng = np.random.default_rng(5)
    values = rng.choice(np.array(["b", "a", "c", "ß", "é"], dtype=object), 500).tolist()
    values = [None if i % 7 == 0 else v for i, v in enumerate(values)]
    series = pl.Series("x", values, dtype=pl.String)
    if kind == "categorical":
        series = series.cast(pl.Categorical)
    elif kind == "enum":
        series = series.cast(pl.Enum(["z", "é", "c", "ß", "b", "a"]))  # "z": a category no row holds
    raw, table, labels = raw_labels(series)
    assert sorted(labels) == sorted({v for v in values if v is not None})  # only labels that occur get a slot
    assert [labels[table[c]] if table[c] >= 0 else None for c in raw] == values
    raw, table, labels = raw_labels(pl.Series("x", [None, None], dtype=series.dtype))
    assert labels == [] and [table[c] for c in raw] == [-1, -1]


def test_label_slots_stay_put_across_batches_with_their_own_tables() -> None:
    """Blocks list their own sorted labels: a label keeps the slot it got first, whatever its code in
    a later block, and a label met later gets the next slot (``measures._Registry``)."""
    registry = _Registry()
    first = LabelCodes.of(pl.Series([1, 0, None, 1], dtype=pl.UInt8), LabelTable(["tech", "toys"]), 2)
    codes, table = registry.codes(first, 4)
    assert [table[c] for c in codes.tolist()] == [1, 0, -1, 1] and registry.labels == ["tech", "toys"]
    second = LabelCodes.of(pl.Series([0, 2, 1], dtype=pl.UInt8), LabelTable(["art", "tech", "toys"]), 3)
    codes, table = registry.codes(second, 3)
    assert [registry.labels[table[c]] for c in codes.tolist()] == ["art", "toys", "tech"]
    assert registry.labels == ["tech", "toys", "art"]
    # A Categorical's codes: only the codes that occur are looked up, batch after batch.
    categorical = pl.Series(["toys", "zoo", None], dtype=pl.Categorical)
    column = coded_labels(categorical.alias("category").to_frame())["category"]
    codes, table = registry.codes(LabelCodes(column.codes[:1], column.null, column.table), 1)
    assert registry.labels == ["tech", "toys", "art"] and table[codes[0]] == 1
    codes, table = registry.codes(LabelCodes(column.codes[1:], column.null, column.table), 2)
    assert registry.labels == ["tech", "toys", "art", "zoo"] and table[codes].tolist() == [3, -1]


def test_only_product_events_count_as_browsing() -> None:
    """An event name sorting after every product event name present is not browsing (``_member``
    used to put codes above the largest wanted one in that one's slot)."""
    stamp = NOW - timedelta(days=30)
    events = pl.DataFrame(
        {
            "profile_id": ["p1", "p1", "p1", "p2"],
            "event_type": ["track"] * 4,
            "event_name": ["Product Viewed", "Signed Up", "Survey Submitted", "Signed Up"],
            "occurred_at": [stamp] * 4,
            "revenue": [None] * 4,
            "currency": ["EUR"] * 4,
            "channel": ["web"] * 4,
            "store_id": ["s1"] * 4,
            "category": ["books", "tech", "tech", "tech"],
        },
        schema=SCHEMA,
    ).with_columns(pl.col(c).cast(pl.Categorical) for c in ("event_type", "event_name", "channel", "category"))
    found = compute_attributes(events, as_of=NOW, config=TagsConfig())
    assert found["favourite_category"].to_list() == ["books", None]
    assert found["browsed_categories"].to_list() == [[], []]  # one browsing event: under min_browsing_events


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_lists_totals_and_favourites_match_numpy(seed: int) -> None:
    """The compiled helpers of the attributes frame against numpy: per-row label lists (at least a
    floor, chosen columns in their order), column totals, and the favourite by a counting sort."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, size=(500, 6), dtype=np.int32)
    columns = np.array([4, 0, 2], dtype=np.int64)
    lists = counted_lists(counts, columns, 2, ["e", "a", "c"]).to_list()
    assert lists == [[label for label, c in zip("eac", columns, strict=True) if row[c] >= 2] for row in counts]
    held = counts >= 3
    assert label_lists(held, list("abcdef")).to_list() == [
        [name for name, h in zip("abcdef", r, strict=True) if h] for r in held
    ]
    totals = np.empty(6, dtype=np.int64)
    column_totals(counts, totals)
    assert totals.tolist() == counts.sum(axis=0).tolist()
    rows = rng.integers(0, 50, size=400).astype(np.uint32)
    ranks = rng.integers(0, 7, size=400).astype(np.uint32)
    best = np.empty(60, dtype=np.int32)  # profiles 50-59 have no visit
    favourite_ranks(rows, ranks, np.zeros(60, dtype=np.int64), np.empty_like(rows), np.zeros(7, dtype=np.int32), best)
    expected = []
    for r in range(60):
        seen = Counter(ranks[rows == r].tolist())
        expected.append(min(seen, key=lambda k: (-seen[k], k)) if seen else -1)
    assert best.tolist() == expected
    with pytest.raises(ValueError, match="column is out of range"):
        counted_lists(counts, np.array([6], dtype=np.int64), 1, ["x"])
    with pytest.raises(ValueError, match="not among the profiles"):
        favourite_ranks(
            rows, ranks, np.zeros(10, dtype=np.int64), np.empty_like(rows), np.zeros(7, dtype=np.int32), best[:10]
        )


def _small_batches(seed: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[EventBatch], pl.Series, list[EventSpec]]:
    """Random events cut into batches of 50, their profiles' keys, and the segments' specs."""
    events, profiles = random_data(seed)
    keys = profiles["profile_id"]
    monkeypatch.setattr(event_scan, "BATCH_EVENTS", 50)
    batches = list(frame_batches(events, _positions(events, keys)[0]))
    assert len(batches) > 4
    return batches, keys, event_specs(s.where for s in SEGMENTS)


def _in_width(batch: EventBatch, width: dict[str, type[np.unsignedinteger[Any]]]) -> EventBatch:
    """The batch with the codes of the named label columns in another width (the others as they are)."""
    labels = {
        name: LabelCodes(np.ascontiguousarray(column.codes, dtype=width[name]), column.null, column.table)
        if name in width
        else column
        for name, column in batch.labels.items()
    }
    return EventBatch(batch.rows, batch.occurred_at, batch.revenue, labels, batch.properties)


def test_codes_in_a_byte_or_in_four_give_the_same_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass reads a block's codes in the width they come in (a byte where the labels are few):
    in a byte, in four, or mixed (the five widened together), the attributes are the same."""
    batches, keys, specs = _small_batches(6, monkeypatch)
    config = TagsConfig()
    names = [name for name in batches[0].labels if name != "store_id"]
    assert names and all(b.labels[n].null <= 0xFF for b in batches for n in names)

    def attributes(width: dict[str, type[np.unsignedinteger[Any]]]) -> pl.DataFrame:
        def scan(sink: EventMeasures) -> None:
            for batch in batches:
                sink.add(_in_width(batch, width))

        return measure_events(scan, keys, as_of=NOW, config=config, event_specs=specs)

    narrow = attributes({**dict.fromkeys(names, np.uint8), "store_id": np.uint8})
    assert narrow.equals(attributes(dict.fromkeys([*names, "store_id"], np.uint32)))
    assert narrow.equals(attributes({names[0]: np.uint32}))
    assert narrow["event_count"].sum() > 0 and narrow["order_count"].sum() > 0
    # As the store's blocks hand them over: a UInt8 column stays a byte a code, nulls included.
    column = LabelCodes.of(pl.Series([1, None, 0], dtype=pl.UInt8), LabelTable(["a", "b"]), 2)
    assert column.codes.dtype == np.uint8 and column.codes.tolist() == [1, 2, 0]
    wide = LabelCodes.of(pl.Series([1, None], dtype=pl.UInt16), LabelTable(["a", "b"]), 2)
    assert wide.codes.dtype == np.uint32 and wide.codes.tolist() == [1, 2]


def test_prefaulting_the_measures_between_and_beside_batches_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``EventMeasures.prefault`` (run on another thread as the scan starts) writes no value: the
    attributes are the same whether it runs before, between or beside the batches."""
    batches, keys, specs = _small_batches(5, monkeypatch)
    config = TagsConfig()

    def scan(sink: EventMeasures, when: str) -> None:
        if when == "before":
            sink.prefault()

        def prefault_often() -> None:
            for _ in range(20):
                sink.prefault()

        beside = threading.Thread(target=prefault_often)
        if when == "beside":
            beside.start()
        for i, batch in enumerate(batches):
            sink.add(batch)
            if when == "between" and i == len(batches) // 2:
                sink.prefault()
        if when == "beside":
            beside.join()

    plain = measure_events(lambda sink: scan(sink, "never"), keys, as_of=NOW, config=config, event_specs=specs)
    for when in ("before", "between", "beside"):
        done = measure_events(partial(scan, when=when), keys, as_of=NOW, config=config, event_specs=specs)
        assert done.equals(plain), when
    assert plain["event_count"].sum() > 0


def test_touching_pages_faults_them_in_and_loses_no_update_made_meanwhile() -> None:
    """``touch_pages`` leaves every byte as it is, even while another thread adds to the same
    bytes (an atomic add of 0), and the pages it touched take no fault when written after."""
    memory = mmap.mmap(-1, 256 * PAGE_BYTES)  # fresh anonymous pages, none faulted in yet
    view = np.frombuffer(memory, dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    touch_pages(view)
    touched = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    view[::PAGE_BYTES] = 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    assert touched - before >= 200 and after - touched < 20
    assert int(view.sum()) == 256

    counters = np.zeros(64 * PAGE_BYTES // 8, dtype=np.int64)  # the first byte of each page: a count
    stop = threading.Event()

    def touching() -> None:
        while not stop.is_set():
            touch_pages(counters.view(np.uint8))

    thread = threading.Thread(target=touching)
    thread.start()
    try:
        for _ in range(200):
            counters[:: PAGE_BYTES // 8] += 1  # while the other thread touches them without the GIL
    finally:
        stop.set()
        thread.join()
    assert set(counters[:: PAGE_BYTES // 8].tolist()) == {200}
    del view
    memory.close()


def test_attribute_columns_are_made_without_importing_pyarrow_compute() -> None:
    """Polars' ``from_arrow`` of a bare Arrow array, and pyarrow's ``LargeListArray.from_arrays``
    with a mask, import ``pyarrow.compute`` (0.06-0.1 s, on the refresh's main thread): the
    attributes' columns are made without either (in a fresh interpreter, where nothing imported it)."""
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import pyarrow as pa
        from cdp.segments.attributes import _column, _bits, counted_lists
        values = np.arange(6, dtype=np.int64)
        column = _column(values, _bits(values % 2 == 0), pa.int64())
        lists = counted_lists(
            np.array([[1, 0], [3, 3], [0, 0]], dtype=np.int32), np.array([0, 1]), 1, ["x", "y"],
            valid=np.array([True, False, True]),
        )
        assert column.to_list() == [0, None, 2, None, 4, None], column.to_list()
        assert lists.to_list() == [["x"], None, []], lists.to_list()
        values[0] = 7  # the column holds the array: no copy
        assert column[0] == 7
        print("pyarrow.compute" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("profiles", [0, 1, 7, 1_000, 100_000])
def test_each_profile_s_row_of_the_pass_is_one_cache_line(profiles: int) -> None:
    """The pass's per-profile row (64 bytes) starts on a 64-byte boundary, so it is one cache line
    (numpy aligns to 16 bytes only), and starts as zeros."""
    sink = EventMeasures(profiles, as_of=NOW, config=TagsConfig())
    assert sink.hot.shape == (profiles, 8) and sink.hot.flags.c_contiguous
    assert sink.hot.ctypes.data % 64 == 0 or profiles == 0  # an empty view's address is numpy's own
    assert not sink.hot.any()
