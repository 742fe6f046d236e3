"""The bulk events read of a segment refresh (``CustomerStore.events_frame``, issue #7).

The fast readers (SQLite: JSON arrays per column; PostgreSQL: COPY as CSV) must
give exactly what the portable row read gives, for awkward values too, and keep
every guarantee of the access layer: policy decision and audit record, only
active profiles, and an erased or expired person's events gone from the next read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import delete, select, update

from cdp._exceptions import AccessDenied
from cdp.access import AccessContext, CustomerStore
from cdp.access import _events as events_module
from cdp.access import _tables as t
from cdp.access.context import classifier_context
from cdp.segments.attributes import SURVEY_EVENT, compute_attributes, measure_events
from cdp.segments.config import TagsConfig
from cdp.segments.definition import event_specs
from cdp.segments.measures import EventMeasures

PROFILING = classifier_context("profiling")
OFFICER = AccessContext("user:olga", "compliance_officer", "compliance")
DSR = AccessContext("user:olga", "compliance_officer", "dsr")
NOBODY = AccessContext("", "analyst", "analytics")  # no actor: denied


def _portable(store: CustomerStore, properties_of: set[str] | None = None) -> pl.DataFrame:
    with store.engine.begin() as conn:
        return events_module._read_rows(conn, properties_of)


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in one order, properties as sorted JSON (the fast readers hand over the stored text)."""
    text = [json.dumps(json.loads(v), sort_keys=True) if v else None for v in frame["properties"].to_list()]
    return frame.with_columns(pl.Series("properties", text, dtype=pl.String)).sort(pl.all(), nulls_last=True)


def _assert_same(store: CustomerStore, properties_of: set[str] | None = None) -> pl.DataFrame:
    fast = store.events_frame(PROFILING, properties_of=properties_of)
    slow = _portable(store, properties_of)
    assert fast.schema == slow.schema
    assert _canonical(fast).equals(_canonical(slow))
    return fast


def _events_of(store: CustomerStore, profile_id: str) -> list[str]:
    with store.engine.begin() as conn:
        return list(conn.execute(select(t.events.c.id).where(t.events.c.profile_id == profile_id)).scalars())


def test_fast_read_equals_the_row_read(loaded: CustomerStore) -> None:
    frame = _assert_same(loaded)
    assert frame.height >= 5 and frame["properties"].drop_nulls().len() >= 1
    assert frame["occurred_at"].dtype == pl.Datetime("us", "UTC")
    # Only the properties asked for are read; everything else is the same.
    only = _assert_same(loaded, {SURVEY_EVENT})
    assert only.filter(pl.col("properties").is_not_null())["event_name"].unique().to_list() == [SURVEY_EVENT]
    assert only.drop("properties").sort(pl.all()).equals(frame.drop("properties").sort(pl.all()))
    assert _assert_same(loaded, set())["properties"].null_count() == frame.height


def test_awkward_values_survive_the_bulk_read(loaded: CustomerStore) -> None:
    with loaded.engine.begin() as conn:
        ids = list(conn.execute(select(t.events.c.id).where(t.events.c.profile_id.is_not(None))).scalars())
        awkward: list[dict[str, object]] = [
            {"category": 'say "hi", then\nleave\t\x1f;', "revenue": 0.1 + 0.2, "currency": "EUR"},
            {"category": "上海 ünïcödé \\ back", "revenue": 1e-7, "store_id": "S,1"},
            {"category": None, "revenue": 123456789.12345679, "channel": None},
            {"event_name": SURVEY_EVENT, "properties": {"nps": 9, "interests": ["travel"], "sentiment": 'a "b"'}},
            {"revenue": -0.0, "properties": {}},
        ]
        for event_id, values in zip(ids, awkward, strict=False):
            conn.execute(update(t.events).where(t.events.c.id == event_id).values(**values))
        # a time with and without microseconds
        conn.execute(
            update(t.events)
            .where(t.events.c.id == ids[0])
            .values(occurred_at=datetime(2026, 10, 2, 3, 4, 5, 678901, tzinfo=UTC))
        )
    frame = _assert_same(loaded)
    assert 0.1 + 0.2 in frame["revenue"].to_list()  # all 17 digits, not 0.3
    assert datetime(2026, 10, 2, 3, 4, 5, 678901, tzinfo=UTC) in frame["occurred_at"].to_list()
    survey = _assert_same(loaded, {SURVEY_EVENT}).filter(pl.col("event_name") == SURVEY_EVENT)
    # the store holds other survey events too, and row order is the database's
    properties = [json.loads(v) for v in survey["properties"].to_list() if v]
    assert {"nps": 9, "interests": ["travel"], "sentiment": 'a "b"'} in properties


def test_sqlite_reads_across_chunks_and_gaps(loaded: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    if loaded.engine.dialect.name != "sqlite":
        pytest.skip("rowid ranges are SQLite's")
    monkeypatch.setattr(events_module, "SQLITE_CHUNK", 2)
    whole = _assert_same(loaded)
    with loaded.engine.begin() as conn:
        rowids = [r[0] for r in conn.exec_driver_sql("SELECT rowid FROM events ORDER BY rowid")]
        # leave a gap of many empty ranges in the middle
        conn.exec_driver_sql("UPDATE events SET rowid = rowid + 1000 WHERE rowid > ?", (rowids[len(rowids) // 2],))
    assert _canonical(_assert_same(loaded)).equals(_canonical(whole))


def test_only_active_profiles_and_resolved_events(loaded: CustomerStore) -> None:
    frame = loaded.events_frame(PROFILING)
    assert frame["profile_id"].null_count() == 0  # the anonymous page view of the fixtures is not there
    person = frame["profile_id"][0]
    loaded.set_profile_status(OFFICER, person, "restricted")
    without = _assert_same(loaded)
    assert person not in without["profile_id"].to_list()
    assert without.height == frame.height - len(_events_of(loaded, person))
    loaded.set_profile_status(OFFICER, person, "active")
    assert _canonical(loaded.events_frame(PROFILING)).equals(_canonical(frame))


def test_erased_persons_events_are_gone_from_the_next_read(loaded: CustomerStore) -> None:
    frame = loaded.events_frame(PROFILING)
    counts = frame.group_by("profile_id").len().sort("len", descending=True)
    victim = counts["profile_id"][0]
    assert _events_of(loaded, victim)
    loaded.erase_subject(DSR, victim)
    after = _assert_same(loaded)
    assert victim not in after["profile_id"].to_list()
    assert after.height == frame.height - counts["len"][0]
    assert not _events_of(loaded, victim)


def test_expired_events_are_gone_from_the_next_read(loaded: CustomerStore) -> None:
    before = loaded.events_frame(PROFILING)
    later = datetime(2026, 10, 3, tzinfo=UTC) + timedelta(days=400)  # web events are kept 395 days
    deleted = {r["rule"]: r for r in loaded.apply_retention(OFFICER, dry_run=False, at=later)}
    assert deleted["events:website"]["deleted"] >= 1
    after = _assert_same(loaded)
    assert 0 < before.height - after.height <= deleted["events:website"]["deleted"]


def test_read_is_decided_and_audited(loaded: CustomerStore) -> None:
    frame = loaded.events_frame(PROFILING)
    reads = [r for r in loaded.search_audit(OFFICER, action="read") if r["resource"] == "events"]
    assert reads[0]["decision"] == "allow" and reads[0]["actor"] == PROFILING.actor
    assert reads[0]["subject_count"] == frame["profile_id"].n_unique() >= 1
    assert "event_properties" in reads[0]["fields"]
    with pytest.raises(AccessDenied):
        loaded.events_frame(NOBODY)
    denied = [r for r in loaded.search_audit(OFFICER, decision="deny") if r["resource"] == "events"]
    assert denied


def test_empty_store_reads_an_empty_frame(store: CustomerStore) -> None:
    frame = store.events_frame(PROFILING)
    assert frame.height == 0 and frame.schema == _portable(store).schema
    with store.engine.begin() as conn:
        conn.execute(delete(t.events))
    assert store.events_frame(PROFILING, properties_of={SURVEY_EVENT}).height == 0


def test_events_come_keyed_by_an_enum_of_the_active_profiles(loaded: CustomerStore) -> None:
    frame = loaded.events_frame(PROFILING)
    dtype = frame.schema["profile_id"]
    assert isinstance(dtype, pl.Enum)
    with loaded.engine.begin() as conn:
        active = sorted(conn.execute(select(t.profiles.c.id).where(t.profiles.c.status == "active")).scalars())
    assert dtype.categories.to_list() == active
    # The attributes map events to profiles through the codes: same result as through the strings,
    # for profiles in any order, one without events and one that is not a category.
    ids = frame["profile_id"].cast(pl.String).unique().sort(descending=True).to_list()
    keys = pl.Series("profile_id", [ids[0], "p_not_a_profile", *ids[1:]])
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    specs = event_specs([{"event": "Order Completed", "within_days": 365, "min_count": 1}])
    by_code = compute_attributes(frame, as_of=as_of, event_specs=specs, profiles=keys)
    plain = frame.with_columns(pl.col("profile_id").cast(pl.String))
    assert by_code.equals(compute_attributes(plain, as_of=as_of, event_specs=specs, profiles=keys))
    assert by_code["profile_id"].to_list() == keys.to_list() and by_code["event_count"][1] is None
    with pytest.raises(ValueError, match="unique"):
        compute_attributes(frame, as_of=as_of, profiles=pl.Series("profile_id", [ids[0], ids[0]]))


def test_events_by_position_in_given_profiles(loaded: CustomerStore) -> None:
    frame = loaded.events_frame(PROFILING)
    ids = frame["profile_id"].cast(pl.String).unique().sort().to_list()
    assert len(ids) >= 3
    restricted, *kept = ids
    loaded.set_profile_status(OFFICER, restricted, "restricted")
    # Any order, one id that is no profile, one profile without events, one that is not active.
    keys = pl.Series("profile_id", [*reversed(kept), "p_not_a_profile", restricted])
    by_position = loaded.events_frame(PROFILING, positions_of=keys)
    assert "profile_id" not in by_position.columns and by_position.schema["profile_row"] == pl.UInt32
    rebuilt = by_position.with_columns(keys.gather(by_position["profile_row"]).alias("profile_id")).drop("profile_row")
    expected = frame.filter(pl.col("profile_id").cast(pl.String) != restricted)
    assert _canonical(rebuilt.select(expected.columns)).equals(
        _canonical(expected.with_columns(pl.col("profile_id").cast(pl.String)))
    )
    only_one = loaded.events_frame(PROFILING, positions_of=pl.Series([kept[0]]))
    assert only_one["profile_row"].unique().to_list() == [0]
    assert only_one.height == frame.filter(pl.col("profile_id").cast(pl.String) == kept[0]).height
    with pytest.raises(ValueError, match="unique"):
        loaded.events_frame(PROFILING, positions_of=pl.Series([kept[0], kept[0]]))
    # What a refresh does with them: the same attributes as from the profile ids.
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    specs = event_specs([{"event": "Order Completed", "within_days": 365, "min_count": 1}])
    plain = loaded.events_frame(PROFILING).with_columns(pl.col("profile_id").cast(pl.String))
    assert compute_attributes(by_position, as_of=as_of, event_specs=specs, profiles=keys).equals(
        compute_attributes(plain, as_of=as_of, event_specs=specs, profiles=keys)
    )
    with pytest.raises(ValueError, match="positions"):
        compute_attributes(by_position, as_of=as_of)


def test_a_scan_gives_the_attributes_of_the_events_frame(loaded: CustomerStore) -> None:
    """``scan_events`` (what a refresh reads: batches handed to the attributes as they come) gives
    the attributes of ``events_frame`` by position, on every backend, under the same audit."""
    ids = loaded.events_frame(PROFILING)["profile_id"].cast(pl.String).unique().sort()
    keys = pl.concat([ids.slice(1), pl.Series(["p_not_a_profile"]), ids.head(1)])
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    specs = event_specs([{"event": "Order Completed", "within_days": 365, "min_count": 1}])
    frame = loaded.events_frame(PROFILING, positions_of=keys, properties_of={SURVEY_EVENT})
    expected = compute_attributes(frame, as_of=as_of, event_specs=specs, profiles=keys)
    people: list[int] = []
    decoded: list[int] = []  # the callback for the end of the decoding: called once
    got = measure_events(
        lambda sink: people.append(
            loaded.scan_events(
                PROFILING, sink, positions_of=keys, properties_of={SURVEY_EVENT}, decoded=lambda: decoded.append(1)
            )
        ),
        keys,
        as_of=as_of,
        config=TagsConfig(),
        event_specs=specs,
    )
    assert got.equals(expected) and people == [ids.len()] and decoded == [1]
    assert got["nps_latest"].drop_nulls().len() >= 1  # the survey answers came with it
    assert "favourite_store" in got.columns
    reads = [r for r in loaded.search_audit(OFFICER, action="read") if r["resource"] == "events"]
    assert reads[0]["decision"] == "allow" and reads[0]["subject_count"] == ids.len()
    with pytest.raises(AccessDenied):
        loaded.scan_events(NOBODY, EventMeasures(keys.len(), as_of=as_of, config=TagsConfig()), positions_of=keys)
    denied = [r for r in loaded.search_audit(OFFICER, decision="deny") if r["resource"] == "events"]
    assert denied
