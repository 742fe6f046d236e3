"""Segment evaluation against a plain-Python reference; validation errors; SQL injection through every field."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from cdp._exceptions import DefinitionError
from cdp._memory_duckdb import memory_only_connection
from cdp.segments._member_bits import count_bits, fill_bits
from cdp.segments.attributes import compute_attributes
from cdp.segments.definition import Segment, compile_segment, event_specs, order_segments, parse_segment
from cdp.segments.engine import SegmentEngine, _bound, _members_of_bits, _read_params

NOW = datetime(2026, 11, 1, tzinfo=UTC)
EVENTS = ("Order Completed", "Product Viewed", "Sale")


def make_rows(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]:
    rng = random.Random(seed)
    people = [
        {
            "profile_id": f"p{i:03d}",
            "country": rng.choice(["US", "DE", "CN", None]),
            "score": rng.choice([None, 1, 2, 3, 4, 5]),
        }
        for i in range(80)
    ]
    events: list[dict[str, Any]] = []
    for person in people:
        for _ in range(rng.randint(0, 14)):
            name = rng.choice(EVENTS)
            days = rng.choice([rng.uniform(-5, 400), 90.0, 30.0, 7.0])  # some exactly on a window edge
            events.append(
                {
                    "profile_id": person["profile_id"],
                    "event_name": name,
                    "occurred_at": NOW - timedelta(days=days),
                    "revenue": round(rng.uniform(0, 200), 2) if name == "Order Completed" else None,
                    "currency": "USD" if name == "Order Completed" else None,
                    "channel": rng.choice(["web", "store"]),
                    "category": rng.choice(["tech", "food"]),
                }
            )
    tags = [(str(p["profile_id"]), "vip") for p in people if rng.random() < 0.3]
    return list[dict[str, Any]](people), events, tags


DEFINITION: dict[str, Any] = {
    "all": [
        {
            "any": [
                {"event": "Order Completed", "within_days": 90, "min_count": 2, "revenue_over": 50},
                {"all": [{"tag": "vip"}, {"attribute": "country", "op": "in", "value": ["US", "DE"]}]},
            ]
        },
        {"not": {"event": "Sale", "between_days": [7, 30], "min_count": 1}},
        {"not": {"attribute": "score", "op": "<", "value": 2}},
        {
            "any": [
                {"event": "Order Completed", "within_days": 365, "total_revenue_over": 150, "channel": "store"},
                {"event": "Product Viewed", "within_days": 30, "max_count": 1, "category": "tech"},
            ]
        },
    ]
}


def reference(people: list[dict[str, Any]], events: list[dict[str, Any]], tags: list[tuple[str, str]]) -> list[str]:
    """The same definition, evaluated row by row in plain Python."""
    held = {(p, t) for p, t in tags}

    def matching(pid: str, name: str, start: int, end: int = 0, **filters: Any) -> list[dict[str, Any]]:
        out = []
        for e in events:
            age = NOW - e["occurred_at"]
            if e["profile_id"] != pid or e["event_name"] != name or age < timedelta(0):
                continue
            if age > timedelta(days=start) or (end and age <= timedelta(days=end)):
                continue
            if "over" in filters and not (e["revenue"] or 0.0) > filters["over"]:
                continue
            if any(e[k] != v for k, v in filters.items() if k in ("channel", "category")):
                continue
            out.append(e)
        return out

    members = []
    for person in people:
        pid = person["profile_id"]
        big_orders = len(matching(pid, "Order Completed", 90, over=50.0)) >= 2
        vip_here = (pid, "vip") in held and person["country"] in ("US", "DE")
        sale = len(matching(pid, "Sale", 30, 7)) >= 1
        low_score = person["score"] is not None and person["score"] < 2
        store = sum(e["revenue"] or 0.0 for e in matching(pid, "Order Completed", 365, channel="store"))
        store_spend = len(matching(pid, "Order Completed", 365, channel="store")) >= 1 and store > 150
        few_views = len(matching(pid, "Product Viewed", 30, category="tech")) <= 1
        if (big_orders or vip_here) and not sale and not low_score and (store_spend or few_views):
            members.append(pid)
    return sorted(members)


def engine_for(
    people: list[dict[str, Any]], events: list[dict[str, Any]], tags: list[tuple[str, str]]
) -> SegmentEngine:
    attributes = pl.DataFrame(people, schema={"profile_id": pl.String, "country": pl.String, "score": pl.Int64})
    event_frame = pl.DataFrame(
        events,
        schema={
            "profile_id": pl.String,
            "event_name": pl.String,
            "occurred_at": pl.Datetime("us", "UTC"),
            "revenue": pl.Float64,
            "currency": pl.String,
            "channel": pl.String,
            "category": pl.String,
        },
    )
    tag_frame = pl.DataFrame(tags, schema={"profile_id": pl.String, "tag": pl.String}, orient="row")
    return SegmentEngine(attributes, event_frame, tag_frame, as_of=NOW)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_nested_event_window_definition_matches_the_reference(seed: int) -> None:
    people, events, tags = make_rows(seed)
    engine = engine_for(people, events, tags)
    try:
        got = engine.members(Segment("nested", "", "profiling", DEFINITION))
    finally:
        engine.close()
    expected = reference(people, events, tags)
    assert got == expected
    # The refresh path: event aggregates computed in the attributes pass, then the same engine query.
    event_frame = engine_for(people, events, tags).events()
    specs = event_specs([DEFINITION])
    computed = compute_attributes(event_frame.with_columns(event_type=pl.lit("track")), as_of=NOW, event_specs=specs)
    attributes = pl.DataFrame(people, schema={"profile_id": pl.String, "country": pl.String, "score": pl.Int64})
    joined = attributes.join(
        computed.select("profile_id", *[c for c in computed.columns if c.startswith("__ev_")]),
        on="profile_id",
        how="left",
    )
    tag_frame = pl.DataFrame(tags, schema={"profile_id": pl.String, "tag": pl.String}, orient="row")
    second = SegmentEngine(joined, event_frame.clear(), tag_frame, as_of=NOW)
    try:
        assert second.members(Segment("nested", "", "profiling", DEFINITION)) == expected
    finally:
        second.close()
    assert 0 < len(expected) < len(people)  # the fixture exercises both outcomes


def test_segment_references_are_evaluated_in_dependency_order() -> None:
    people, events, tags = make_rows(9)
    vip = Segment("vip", "", "profiling", {"tag": "vip"})
    buyers = Segment("buyers", "", "profiling", {"event": "Order Completed", "within_days": 365})
    both = Segment("vip_buyers", "", "profiling", {"all": [{"segment": "vip"}, {"segment": "buyers"}]})
    neither = Segment("others", "", "profiling", {"not": {"any": [{"segment": "vip"}, {"segment": "buyers"}]}})
    engine = engine_for(people, events, tags)
    try:
        out = engine.evaluate([both, neither, vip, buyers])
    finally:
        engine.close()
    vip_set, buyer_set = set(out["vip"].to_list()), set(out["buyers"].to_list())
    assert set(out["vip_buyers"].to_list()) == vip_set & buyer_set
    assert set(out["others"].to_list()) == {p["profile_id"] for p in people} - vip_set - buyer_set


def _chain() -> list[Segment]:
    """Segments referencing others two levels deep, with parameters on both sides of each reference
    and a ``not`` over a condition on an attribute that is null for some profiles."""
    return [
        Segment("top", "", "profiling", {"all": [{"attribute": "score", "op": ">=", "value": 2}, {"segment": "mid"}]}),
        Segment(
            "mid",
            "",
            "profiling",
            {"any": [{"not": {"segment": "low"}}, {"event": "Order Completed", "within_days": 90, "min_count": 2}]},
        ),
        Segment("low", "", "profiling", {"all": [{"attribute": "score", "op": "<=", "value": 3}, {"tag": "vip"}]}),
        Segment(
            "beside", "", "profiling", {"all": [{"segment": "low"}, {"attribute": "country", "op": "=", "value": "US"}]}
        ),
    ]


@pytest.mark.parametrize("seed", [3, 8])
def test_inlined_references_select_what_looked_up_members_select(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference answered by repeating the referenced condition (one scan of ``base``) selects
    the same profiles as one answered from the referenced segment's members (a scan a level)."""
    people, events, tags = make_rows(seed)
    inlined = engine_for(people, events, tags)
    try:
        compiled: dict[str, Any] = {}
        for segment in order_segments(_chain()):
            compiled[segment.name] = inlined.compile(segment, segments={s.name for s in _chain()}, inline=compiled)
        assert compiled["top"].segments == frozenset() and compiled["top"].inlined == {"mid", "low"}
        assert compiled["top"].condition.count("?") == len(compiled["top"].params)
        queries: list[int] = []
        original = SegmentEngine._in_parallel

        def counted(
            self: SegmentEngine, batch: Sequence[tuple[str, Sequence[object]]], columns: Sequence[Collection[str]]
        ) -> list[Any]:
            queries.append(len(batch))
            return original(self, batch, columns)

        monkeypatch.setattr(SegmentEngine, "_in_parallel", counted)
        fast = inlined.evaluate(_chain())
        assert len(queries) == 1  # every segment answered by the first scan
        # A later definition still reads the referenced segments' members.
        again = inlined.run(inlined.compile(Segment("again", "", "profiling", {"segment": "mid"})))
        assert again.to_list() == fast["mid"].to_list()
    finally:
        inlined.close()
    monkeypatch.setattr("cdp.segments.definition.INLINE_MAX_CHARS", 0)  # every reference looked up
    queries.clear()
    looked_up = engine_for(people, events, tags)
    try:
        slow = looked_up.evaluate(_chain())
    finally:
        looked_up.close()
    assert len(queries) == 3  # a scan a level: low; mid and beside; top
    for name in ("top", "mid", "low", "beside"):
        assert fast[name].to_list() == slow[name].to_list(), name
    assert 0 < len(fast["top"]) < len(people) and 0 < len(fast["low"]) < len(people)
    # The null scores matter: ``not low`` holds for them, whether inlined or looked up.
    null_score = {p["profile_id"] for p in people if p["score"] is None}
    assert null_score and null_score <= set(fast["mid"].to_list())


@pytest.mark.parametrize("width", [1, 10, 62])
def test_member_bits_split_each_bit_into_its_rows(width: int) -> None:
    """The compiled split of the queries' bit words: per bit, the positions of the rows that have it,
    in the rows' order (the positions here are shuffled, so order is checked, not only sets)."""
    rng = np.random.default_rng(width)
    rows = 5_000
    words = np.zeros(rows, dtype=np.int64)
    for bit in range(width):
        words |= (rng.random(rows) < rng.uniform(0.0, 0.3)).astype(np.int64) << bit
    words[:3] = 0  # rows in no segment
    positions = rng.permutation(rows).astype(np.uint32)
    counts = np.zeros(width, dtype=np.int64)
    total = count_bits(words, counts)
    members = np.empty(total, dtype=np.uint32)
    ends = np.cumsum(counts)
    fill_bits(positions, words, ends - counts, members)
    for bit in range(width):
        expected = positions[(words >> bit) & 1 == 1]
        assert members[ends[bit] - counts[bit] : ends[bit]].tolist() == expected.tolist(), bit
    assert total == sum(int(((words >> b) & 1).sum()) for b in range(width))
    # As the engine takes them: each bit's members sorted.
    split = _members_of_bits(positions, pl.Series(words), width)
    assert [m.to_list() for m in split] == [sorted(positions[(words >> b) & 1 == 1].tolist()) for b in range(width)]


def test_member_bits_refuse_a_bit_not_asked_for() -> None:
    words = np.array([1, 0, 1 << 5], dtype=np.int64)
    with pytest.raises(ValueError, match="row 2: a bit set past the 3 counted"):
        count_bits(words, np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="row 2: no room for bit 5"):
        fill_bits(np.arange(3, dtype=np.uint32), words, np.zeros(3, dtype=np.int64), np.empty(2, dtype=np.uint32))
    with pytest.raises(ValueError, match="one word per position"):
        fill_bits(np.arange(2, dtype=np.uint32), words, np.zeros(3, dtype=np.int64), np.empty(2, dtype=np.uint32))


COLUMNS = {"country": "text", "score": "number", "interests": "list", "first_seen": "time"}


def _error(where: dict[str, Any], **kwargs: Any) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        compile_segment(Segment("s", "", "profiling", where, "segs/s.yaml"), COLUMNS, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("where", "path", "reason"),
    [
        ({"attribute": "colour", "op": "=", "value": "x"}, "where.attribute", "unknown field 'colour'"),
        ({"all": [{"attribute": "score", "op": ">", "value": "3"}]}, "where.all[0].value", "wrong type"),
        ({"attribute": "country", "op": ">", "value": "US"}, "where.op", "needs a number attribute"),
        ({"attribute": "score", "op": "in", "value": 3}, "where.value", "non-empty list"),
        ({"attribute": "interests", "op": "=", "value": "tech"}, "where.op", "does not apply to a list"),
        ({"attribute": "first_seen", "op": ">", "value": 1}, "where.op", "time attributes"),
        ({"event": "Order Completed", "within_days": 0}, "where.within_days", "invalid window"),
        ({"event": "Order Completed", "within_days": 99999}, "where.within_days", "invalid window"),
        ({"event": "Order Completed", "within_days": "90"}, "where.within_days", "invalid window"),
        ({"event": "Order Completed", "between_days": [30, 7]}, "where.between_days", "invalid window"),
        ({"event": "X", "within_days": 9, "between_days": [1, 2]}, "where.between_days", "not both"),
        ({"event": "Order Completed", "min_count": -1}, "where.min_count", "wrong type"),
        ({"event": "Order Completed", "revenue_over": "100"}, "where.revenue_over", "wrong type"),
        ({"event": "Order Completed", "colour": "red"}, "where.colour", "unknown field"),
        ({"any": [{"not": {"tag": 7}}]}, "where.any[0].not.tag", "wrong type"),
        ({"any": []}, "where.any", "non-empty list"),
        ({"consent": "telepathy"}, "where.consent", "unknown purpose"),
        ({"consent": "marketing_email", "status": "maybe"}, "where.status", "must be one of"),
        ({"segment": "ghost"}, "where.segment", "unknown segment"),
        ({"colour": "red"}, "where", "unknown condition"),
    ],
)
def test_validation_errors_name_file_path_and_reason(where: dict[str, Any], path: str, reason: str) -> None:
    error = _error(where, purposes={"marketing_email"}, segments={"other"})
    assert error.file == "segs/s.yaml" and error.path == path and reason in error.reason
    assert str(error).startswith(f"segs/s.yaml:{path}: ")


def test_document_errors() -> None:
    with pytest.raises(DefinitionError, match="unknown field 'wehre'"):
        parse_segment({"name": "a", "wehre": {}}, source="f.yaml")
    with pytest.raises(DefinitionError) as caught:
        parse_segment({"name": "A b", "where": {}}, source="f.yaml")
    assert caught.value.path == "name"
    with pytest.raises(DefinitionError) as caught:
        parse_segment({"name": "a", "purpose": ["x"], "where": {}}, source="f.yaml")
    assert caught.value.path == "purpose" and "wrong type" in caught.value.reason


def test_cyclic_references_are_refused_with_the_cycle() -> None:
    a = Segment("a", "", "profiling", {"all": [{"tag": "x"}, {"segment": "b"}]}, "a.yaml")
    b = Segment("b", "", "profiling", {"not": {"segment": "c"}}, "b.yaml")
    c = Segment("c", "", "profiling", {"any": [{"segment": "a"}]}, "c.yaml")
    with pytest.raises(DefinitionError) as caught:
        order_segments([a, b, c])
    assert caught.value.file == "c.yaml" and caught.value.path == "where.any[0].segment"
    assert "cyclic reference: a -> b -> c -> a" in caught.value.reason
    with pytest.raises(DefinitionError, match="cyclic reference: s -> s"):
        order_segments([Segment("s", "", "p", {"segment": "s"})])
    assert [s.name for s in order_segments([a, Segment("b", "", "p", {"tag": "x"})])] == ["b", "a"]


PAYLOADS = (
    "x'); DROP TABLE base; --",
    'x"); DROP TABLE base; --',
    "1 OR 1=1",
    "'; COPY base TO '/tmp/leak.csv'; --",
    "x) UNION SELECT 'p_evil' --",
)


def _injections(payload: str) -> list[dict[str, Any]]:
    return [
        {"attribute": "country", "op": "=", "value": payload},
        {"attribute": "country", "op": "in", "value": ["US", payload]},
        {"attribute": "interests", "op": "contains", "value": payload},
        {"attribute": "interests", "op": "contains_any", "value": [payload]},
        {"attribute": payload, "op": "=", "value": "US"},
        {"attribute": "country", "op": payload, "value": "US"},
        {"tag": payload},
        {"tag": "vip';DROP"},
        {"event": payload, "within_days": 30},
        {"event": "Order Completed", "within_days": 30, "channel": payload, "category": payload},
        {"segment": payload},
        {"consent": payload},
        {"consent": "marketing_email", "status": payload},
        {payload: "x"},
    ]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sql_injection_through_every_field_never_executes(payload: str) -> None:
    leak = Path("/tmp/leak.csv")
    existed = leak.exists()
    people, events, tags = make_rows(3)
    people = [{**p, "interests": ["tech"]} for p in people]
    attributes = pl.DataFrame(
        people,
        schema={"profile_id": pl.String, "country": pl.String, "score": pl.Int64, "interests": pl.List(pl.String)},
    )
    engine = engine_for(people, events, tags)
    engine.base = attributes
    engine.columns = {**engine.columns, "interests": "list"}
    engine._register_base()
    engine.analytics.execute("CREATE TABLE canary AS SELECT 1 AS alive")
    try:
        for where in _injections(payload):
            segment = Segment("inj", "", "profiling", where, "inj.yaml")
            try:
                compiled = engine.compile(segment, segments=set())
            except DefinitionError:
                continue  # refused by validation: fine
            assert payload not in compiled.sql  # values are bound, names are digests
            members = engine.run(compiled)
            assert "p_evil" not in members.to_list()
            assert members.len() <= len(people)
        assert engine.analytics.execute("SELECT alive FROM canary").fetchall() == [(1,)]
        assert engine.analytics.execute("SELECT count(*) FROM base").fetchall() == [(len(people),)]
    finally:
        engine.close()
    assert existed or not leak.exists()


def test_many_segments_in_one_query_each_get_their_own_members() -> None:
    """A query answers 62 segments per result word: 130 segments span three words, each checked alone."""
    people, events, tags = make_rows(11)
    segments = [
        Segment(f"s{i:03d}", "", "profiling", {"attribute": "score", "op": ">=", "value": i % 6})
        if i % 2
        else Segment(f"s{i:03d}", "", "profiling", {"event": EVENTS[i % 3], "within_days": 30 + i, "min_count": i % 4})
        for i in range(130)
    ]
    engine = engine_for(people, events, tags)
    try:
        together = engine.evaluate(segments)
        for segment in segments:
            alone = engine.members(segment)
            assert together[segment.name].to_list() == alone, segment.name
        sizes = {len(v) for v in together.values()}
        assert len(sizes) > 3 and max(sizes) > 0
    finally:
        engine.close()


def test_enum_columns_select_the_same_members_as_their_strings() -> None:
    """Classifiers hand over text columns as Enums (a byte a row): attribute conditions (DuckDB) and
    tag columns (flags) must treat them as the strings they stand for, values they cannot hold too."""
    regions = ["华东", "华南", None, "west", "interest", None]
    ids = [f"p{i}" for i in range(len(regions))]
    as_text = pl.DataFrame({"profile_id": ids, "region": regions, "score": list(range(len(regions)))})
    as_enum = as_text.with_columns(pl.col("region").cast(pl.Enum(["interest", "west", "华南", "华东"])))
    wheres: list[dict[str, Any]] = [
        {"attribute": "region", "op": "=", "value": "华东"},
        {"attribute": "region", "op": "!=", "value": "west"},
        {"attribute": "region", "op": "in", "value": ["华南", "interest", "nowhere"]},
        {"attribute": "region", "op": "not_in", "value": ["华南"]},
        {"attribute": "region", "op": "=", "value": "nowhere"},  # a value the Enum cannot hold
        {"tag": "area:west"},
        {"tag": "area:nowhere"},
        {"any": [{"tag": "area:华东"}, {"attribute": "score", "op": ">=", "value": 4}]},
    ]
    segments = [Segment(f"s{i}", "", "profiling", where) for i, where in enumerate(wheres)]
    found: list[dict[str, list[str]]] = []
    for frame in (as_text, as_enum):
        engine = SegmentEngine(
            frame,
            pl.DataFrame(schema={"profile_id": pl.String, "event_name": pl.String}),
            pl.DataFrame(schema={"profile_id": pl.String, "tag": pl.String}),
            as_of=NOW,
            tag_frame=frame.select("profile_id", pl.col("region").alias("area")),
        )
        try:
            assert engine.columns["region"] == "text"  # an Enum's repr lists its values ("interest" holds "int")
            found.append({name: ids.to_list() for name, ids in engine.evaluate(segments).items()})
        finally:
            engine.close()
    assert found[0] == found[1]
    assert found[1]["s0"] == ["p0"] and found[1]["s5"] == ["p3"] and found[1]["s4"] == found[1]["s6"] == []


PARAMETER_CASES: list[tuple[str, list[object]]] = [
    ("SELECT i FROM t WHERE n >= ? AND n <= ?", [2, 7]),
    ("SELECT i FROM t WHERE x > ?", [1.5]),
    ("SELECT i FROM t WHERE x < ?", [float("inf")]),
    ("SELECT i FROM t WHERE x > ?", [float("-inf")]),
    ("SELECT i FROM t WHERE x = ?", [float("nan")]),
    ("SELECT i FROM t WHERE n < ?", [2**70]),
    ("SELECT i FROM t WHERE flag = ?", [True]),
    ("SELECT i FROM t WHERE s = ?", ['it\'s ? "quoted" 华东']),
    ("SELECT i FROM t WHERE s IN (?, ?) AND n BETWEEN ? AND ?", ["a", 'it\'s ? "quoted" 华东', 0, 9]),
    ("SELECT i FROM t WHERE \"we?ird\" = ? AND s <> '?'", [3]),
    ("SELECT i FROM t WHERE list_has_any(l, ?::VARCHAR[]) AND s <> ?", [["b", "x'y"], "zz"]),
]


@pytest.mark.parametrize(("sql", "params"), PARAMETER_CASES)
def test_parameters_in_place_select_what_duckdb_binding_selects(sql: str, params: list[object]) -> None:
    """The engine reads parameters from a table of their own instead of having DuckDB's Python API
    bind them (which imports pandas): the same rows for every type a definition binds, a ``?``
    inside quotes left alone, no value in the SQL text."""
    rows = pl.DataFrame(
        {
            "i": range(10),
            "n": range(10),
            "x": [float(v) for v in range(9)] + [float("nan")],
            "flag": [v % 2 == 0 for v in range(10)],
            "s": ["a", 'it\'s ? "quoted" 华东', "?", "b", None, "zz", "a", "b", "c", "d"],
            "we?ird": [3, 3, 0, 3, 0, 0, 0, 3, 0, 0],
            "l": [["b"], ["x'y"], [], None, ["a"], ["b", "c"], ["x'y", "zz"], ["q"], ["b"], []],
        }
    )
    connection = memory_only_connection()
    try:
        connection.register("t", rows.to_arrow())
        expected = sorted(r[0] for r in connection.execute(sql, params).fetchall())
        with _bound(connection, sql, params) as bound:
            for value in ("quoted", "x'y", "1.5", str(2**70), "inf", "nan", "zz"):  # values stay out of the SQL
                assert value not in bound.sql and value not in bound.setup
            connection.execute(bound.setup)
            got = sorted(r[0] for r in connection.execute(bound.sql).fetchall())
        assert got == expected
        tables = {r[0] for r in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert not any(t.startswith("__params") for t in tables)  # dropped after
    finally:
        connection.close()
    with pytest.raises(ValueError, match="parameters"):
        _read_params(sql, "p", len(params) + 1)


def test_a_refresh_s_segment_queries_import_neither_pandas_nor_pyarrow_dataset() -> None:
    """DuckDB imports ``pyarrow.dataset`` (and with it pandas, ~0.25 s holding the GIL) to read a
    registered Arrow table, and pandas to bind Python parameters: the engine registers bare
    streams and puts parameters in place, so a process that evaluates segments (numbers, text,
    lists, consents, references looked up and read twice) imports neither."""
    code = textwrap.dedent(
        """
        import sys
        from datetime import UTC, datetime
        import polars as pl
        import cdp.segments.definition as definition
        from cdp.segments.definition import Segment
        from cdp.segments.engine import SegmentEngine, warm_up
        warm_up()
        definition.INLINE_MAX_CHARS = 0  # references looked up in segmembers
        people = pl.DataFrame({
            "profile_id": [f"p{i}" for i in range(6)], "score": [1, 2, 3, 4, 5, None],
            "country": ["US", "CN", "US", None, "DE", "US"],
            "interests": [["a"], ["b"], [], None, ["a", "b"], ["c"]],
        })
        consents = pl.DataFrame({
            "profile_id": ["p0", "p2", "p5", "p0"], "purpose": ["ads", "ads", "mail", "mail"],
            "status": ["granted", "granted", "granted", "denied"], "allowed": [True, True, True, False],
        })
        engine = SegmentEngine(
            people, people.clear(), pl.DataFrame(schema={"profile_id": pl.String, "tag": pl.String}),
            as_of=datetime(2026, 1, 1, tzinfo=UTC), consents=consents,
        )
        low = Segment("low", "", "profiling", {"attribute": "score", "op": "<=", "value": 3})
        us = Segment("us", "", "profiling", {"attribute": "country", "op": "in", "value": ["US", "DE"]})
        both = Segment("both", "", "profiling", {"all": [
            {"segment": "low"}, {"not": {"segment": "us"}},
            {"attribute": "interests", "op": "contains_any", "value": ["b"]},
        ]})
        asked = Segment("asked", "", "profiling", {"any": [{"consent": "ads"}, {"consent": "mail"}]})
        out = engine.evaluate([low, us, both, asked])
        assert out["both"].to_list() == ["p1"], out["both"].to_list()
        assert out["asked"].to_list() == ["p0", "p2", "p5"], out["asked"].to_list()
        assert engine.allowed("ads") == {"p0", "p2"}
        print("pandas" in sys.modules, "pyarrow.dataset" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False False"
