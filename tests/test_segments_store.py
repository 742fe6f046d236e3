"""Refresh, rule and manual tags with history, preview, the customer 360 and insights, on the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import polars as pl
import pytest

from cdp._exceptions import AccessDenied, Conflict, NotFound
from cdp.access import AccessContext, CustomerStore
from cdp.cli import main
from cdp.segments import insights
from cdp.segments.charts import write_charts
from cdp.segments.classify.builtin import builtin_classifiers
from cdp.segments.config import TagsConfig, parse_tags_config
from cdp.segments.definition import Segment
from cdp.segments.service import preview, refresh

OFFICER = AccessContext("user:olga", "compliance_officer", "compliance")
ENGINEER = AccessContext("user:erin", "data_engineer", "operations")
ANALYST = AccessContext("user:ann", "analyst", "analytics")
MARKETER = AccessContext("user:mo", "marketer", "marketing_email")
BUYERS = Segment("buyers", "", "profiling", {"event": "Order Completed", "within_days": 3650})
EMAILABLE = Segment(
    "emailable_buyers", "", "marketing_email", {"all": [{"segment": "buyers"}, {"consent": "marketing_email"}]}
)


def _ids_by_email(store: CustomerStore) -> dict[str, str]:
    return {r["email"]: r["profile_id"] for r in store.read_profiles(OFFICER, ["email"]) if r.get("email")}


def _config(rules: Sequence[Mapping[str, object]]) -> TagsConfig:
    return parse_tags_config({"rules": rules}, source="tags.yaml")


def test_refresh_writes_tags_and_memberships_then_only_changes(loaded: CustomerStore) -> None:
    first = refresh(loaded, [EMAILABLE, BUYERS], classifiers=builtin_classifiers(), config=TagsConfig())
    assert first.profiles == 5
    assert first.segments["buyers"] == (5, 5, 0)  # everyone entered
    assert first.tags["lifecycle:active"][0] >= 1
    assert sum(v[0] for k, v in first.tags.items() if k.startswith("rfm:")) == 5  # every buyer in one cell
    ids = _ids_by_email(loaded)
    members = set(loaded.segment_members(ENGINEER, "emailable_buyers"))
    assert ids["alice.smith@example.com"] in members  # granted marketing on the web
    assert first.segments["emailable_buyers"][0] == 4  # Mary Lee said no; US silence allows the others
    audit_before = loaded.counts(ENGINEER)["audit"]
    second = refresh(loaded, [EMAILABLE, BUYERS], classifiers=builtin_classifiers(), config=TagsConfig())
    assert "segment:buyers" in second.unchanged and "tag:lifecycle:active" in second.unchanged
    assert all(v[1] == v[2] == 0 for v in second.tags.values())
    writes_second = loaded.counts(ENGINEER)["audit"] - audit_before
    full = refresh(loaded, [EMAILABLE, BUYERS], classifiers=builtin_classifiers(), config=TagsConfig(), full=True)
    assert full.unchanged == ()
    assert loaded.counts(ENGINEER)["audit"] - audit_before - writes_second > writes_second  # full re-syncs all


def test_refresh_with_no_events_to_see_computes_empty_segments(loaded: CustomerStore) -> None:
    """Profiles but no events (every event gone, as after erasures or before any tracking): the
    built-in rule tags over event attributes still compile and the refresh completes (it failed
    with "unknown field 'channel_count'")."""
    from sqlalchemy import delete

    from cdp.access import _tables as t

    with loaded.engine.begin() as conn:
        conn.execute(delete(t.events))
    from cdp.segments.service import tags_config_for

    config = tags_config_for(loaded.settings)  # the shipped tags file: rules over event attributes
    assert any("channel_count" in str(rule.where) for rule in config.rules)
    report = refresh(loaded, [BUYERS, EMAILABLE], classifiers=builtin_classifiers(), config=config)
    assert report.segments["buyers"][0] == 0
    assert loaded.segment_members(OFFICER, "buyers") == []


def test_rule_tags_gain_and_lose_with_history(loaded: CustomerStore) -> None:
    rule = {"name": "spender", "taxonomy": "value", "where": {"attribute": "revenue_lifetime", "op": ">", "value": 50}}
    refresh(loaded, [], classifiers=[], config=_config([rule]))
    ids = _ids_by_email(loaded)
    alice = ids["alice.smith@example.com"]
    assert "spender" in loaded.profile_tags(ENGINEER)[alice]
    stricter = {**rule, "where": {"attribute": "revenue_lifetime", "op": ">", "value": 10_000}}
    report = refresh(loaded, [], classifiers=[], config=_config([stricter]))
    assert report.tags["spender"][0] == 0 and report.tags["spender"][2] >= 1
    history = loaded.tag_history(ENGINEER, profile_id=alice, tag="spender")
    assert len(history) == 1 and history[0]["removed_at"] is not None
    assert history[0]["assigned_by"] == "rule:rules"
    assert loaded.tag_definitions(ENGINEER)["spender"]["taxonomy"] == "value"


def test_rules_see_classifier_tags_and_earlier_rules(loaded: CustomerStore) -> None:
    rules = [
        {"name": "buyer", "taxonomy": "behavioural", "where": {"event": "Order Completed", "within_days": 3650}},
        {"name": "buyer_in_us", "taxonomy": "basic", "where": {"all": [{"tag": "buyer"}, {"tag": "region:americas"}]}},
    ]
    report = refresh(loaded, [], classifiers=builtin_classifiers(), config=_config(rules))
    assert 1 <= report.tags["buyer_in_us"][0] < report.tags["buyer"][0]


def test_manual_tags_record_who_and_when_and_survive_refresh(loaded: CustomerStore) -> None:
    alice = _ids_by_email(loaded)["alice.smith@example.com"]
    loaded.define_manual_tag(ENGINEER, "vip_event_2026", taxonomy="basic", description="invited")
    assert loaded.assign_tag(ENGINEER, "vip_event_2026", [alice]) == 1
    assert loaded.assign_tag(ENGINEER, "vip_event_2026", [alice]) == 0
    vip = Segment("vips", "", "profiling", {"tag": "vip_event_2026"})
    report = refresh(loaded, [vip], classifiers=builtin_classifiers(), config=TagsConfig())
    assert report.segments["vips"][0] == 1
    (row,) = loaded.tag_history(ENGINEER, tag="vip_event_2026")
    assert row["assigned_by"] == "user:erin" and row["assigned_at"] is not None and row["removed_at"] is None
    assert loaded.remove_tag(ENGINEER, "vip_event_2026", [alice]) == 1
    with pytest.raises(Conflict):
        loaded.assign_tag(ENGINEER, "lifecycle:active", [alice])
    with pytest.raises(Conflict):
        loaded.define_manual_tag(ENGINEER, "lifecycle:active", taxonomy="basic")
    with pytest.raises(NotFound):
        loaded.assign_tag(ENGINEER, "vip_event_2026", ["p_nobody"])
    with pytest.raises(NotFound):
        loaded.assign_tag(ENGINEER, "never_defined", [alice])


def test_preview_counts_and_masks_the_sample_without_writing(loaded: CustomerStore) -> None:
    result = preview(loaded, ANALYST, BUYERS, sample=10, fields=("email", "city"), classifiers=[], config=TagsConfig())
    assert result.count >= 3 and result.profiles == 5
    assert result.sample and all(len(r["email"]) == 64 for r in result.sample if r.get("email"))  # hashed
    assert loaded.segment_catalogue(ENGINEER) == []
    with_reference = preview(loaded, MARKETER, EMAILABLE, others=[BUYERS], classifiers=[], config=TagsConfig())
    assert with_reference.count <= result.count
    with pytest.raises(AccessDenied):
        preview(loaded, AccessContext("user:x", "auditor_readonly", "compliance"), BUYERS, classifiers=[])


def test_customer_360_is_masked_per_role(loaded: CustomerStore) -> None:
    refresh(loaded, [BUYERS], classifiers=builtin_classifiers(), config=TagsConfig())
    alice = _ids_by_email(loaded)["alice.smith@example.com"]
    clear = loaded.profile_view(OFFICER, alice)
    assert {g["field"]: g["value"] for g in clear["golden"]}["email"] == "alice.smith@example.com"
    assert {"website", "pos", "survey"} <= {r["source"] for r in clear["records"]}
    assert clear["purchases"] and all(p["event_name"] == "Order Completed" for p in clear["purchases"])
    assert clear["surveys"][0]["nps"] == 10 and "tech" in clear["surveys"][0]["interests"]
    assert any(c["purpose"] == "marketing_email" for c in clear["consents"])
    assert any(t["tag"].startswith("lifecycle:") for t in clear["tags"])
    assert [s["segment"] for s in clear["segments"]] == ["buyers"]
    hashed = loaded.profile_view(ANALYST, alice)
    emails = [r["email"] for r in hashed["records"] if r.get("email")]
    assert emails and all(len(e) == 64 and "@" not in e for e in emails)
    with pytest.raises(NotFound):
        loaded.profile_view(OFFICER, "p_does_not_exist")


def test_customer_360_lists_a_shredded_record_without_its_identifiers(
    cli_env: dict[str, str], loaded: CustomerStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record whose data key was crypto-shredded is listed and marked, not an error (the view
    and ``cdp profiles show`` used to fail with DecryptionFailed on it)."""
    from sqlalchemy import select

    from cdp.access import _tables as t

    with loaded.engine.begin() as conn:
        linked = conn.execute(
            select(t.record_links.c.profile_id, t.records.c.key_id, t.records.c.occurred_at)
            .join(t.records, t.records.c.id == t.record_links.c.record_id)
            .where(t.record_links.c.unlinked_at.is_(None), t.records.c.status == "active")
            .order_by(t.record_links.c.profile_id, t.records.c.occurred_at)
        ).all()
        keys_of: dict[str, set[str]] = {}
        for row in linked:
            keys_of.setdefault(row.profile_id, set()).add(row.key_id)
        person = min(p for p, keys in keys_of.items() if len(keys) > 1)  # records under two keys or more
        rows = [r for r in linked if r.profile_id == person]
        last_key = rows[-1].key_id  # the latest record's: the view's first rows stay readable
        loaded.shred_keys(conn, [last_key])
    view = loaded.profile_view(OFFICER, person)
    shredded = [r for r in view["records"] if r.get("shredded")]
    live = [r for r in view["records"] if not r.get("shredded")]
    assert len(shredded) == sum(r.key_id == last_key for r in rows)
    assert shredded and all(r["email"] is None and r["phone"] is None for r in shredded)
    assert any(r["email"] for r in live)
    code = 0
    try:
        main(["profiles", "show", person, "--role", "compliance_officer", "--purpose", "compliance"])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out = capsys.readouterr().out
    assert code == 0 and "shredd" in out  # the column of the one record that has it (a narrow console wraps it)


def test_insight_tables_and_charts(loaded: CustomerStore, tmp_path: Path) -> None:
    refresh(loaded, [BUYERS, EMAILABLE], classifiers=builtin_classifiers(), config=TagsConfig())
    history = loaded.segment_size_history(ANALYST)
    assert set(history["segment"].to_list()) == {"buyers", "emailable_buyers"}
    memberships = loaded.membership_frame(ANALYST)
    matrix = insights.overlap_matrix(memberships)
    pairs = insights.overlap(memberships)
    (pair,) = pairs.iter_rows(named=True)
    assert pair["both"] == pair["size_b"] and matrix.height == 2  # emailable buyers are all buyers
    attributes = pl.DataFrame(
        {
            "profile_id": ["a", "b", "c"],
            "rfm_recency": [5, 1, None],
            "rfm_frequency": [5, 1, None],
            "rfm_cell": ["champions", "lost", None],
            "revenue_lifetime": [100.0, 5.0, None],
            "lifecycle": ["active", "churned", "new"],
            "world_region": ["Europe", "Asia", None],
            "cn_region": [None, "华东", None],
        }
    )
    grid = insights.rfm_grid(attributes)
    assert grid.row(0) == (5, 0, 0, 0, 0, 1) and grid.row(4) == (1, 1, 0, 0, 0, 0)
    funnel = insights.lifecycle_funnel(attributes)
    assert funnel["stage"].to_list() == ["new", "active", "loyal", "at_risk", "churned"]
    assert funnel["profiles"].to_list() == [1, 1, 0, 0, 1]
    regions = insights.regional_distribution(attributes)
    assert ("China region", "华东", 1) in {(r[0], r[1], r[2]) for r in regions.iter_rows()}
    for fmt in ("png", "svg"):
        written = write_charts(
            tmp_path / fmt, fmt=fmt, history=history, matrix=matrix, grid=grid, funnel=funnel, regions=regions
        )
        assert len(written) == 5 and all(p.stat().st_size > 1000 for p in written)
    assert "<svg" in (tmp_path / "svg" / "rfm_grid.svg").read_text(encoding="utf-8")


def test_cli_segments_profiles_tags_and_insights(
    cli_env: dict[str, str], loaded: CustomerStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    definition = tmp_path / "buyers.yaml"
    definition.write_text(
        "name: buyers\npurpose: profiling\nwhere: {event: Order Completed, within_days: 3650}\n", encoding="utf-8"
    )

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            main(list(argv))
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = run("segments", "refresh", str(definition))
    assert code == 0 and "buyers" in out
    code, out, _ = run("segments", "preview", str(definition), "--role", "analyst", "--purpose", "analytics")
    assert code == 0 and "segment buyers:" in out
    code, out, _ = run("segments", "list", "--role", "analyst", "--purpose", "analytics")
    assert code == 0 and "buyers" in out
    code, _, err = run("segments", "list")
    assert code != 0 and "declare a role" in err and err.count("\n") == 1
    alice = _ids_by_email(loaded)["alice.smith@example.com"]
    code, out, _ = run("profiles", "show", alice, "--role", "analyst", "--purpose", "analytics")
    assert code == 0 and "Purchases" in out and "alice.smith@example.com" not in out
    code, out, _ = run(
        "tags",
        "define",
        "called_back",
        "--taxonomy",
        "behavioural",
        "--role",
        "data_engineer",
        "--purpose",
        "operations",
    )
    assert code == 0
    code, out, _ = run("tags", "add", "called_back", alice, "--role", "data_engineer", "--purpose", "operations")
    assert code == 0 and "assigned to 1" in out
    code, out, _ = run(
        "insights", "--role", "analyst", "--purpose", "analytics", "--charts", str(tmp_path / "c"), "--format", "svg"
    )
    assert code == 0 and "Lifecycle funnel" in out and (tmp_path / "c" / "regions.svg").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nwhere: {event: Order Completed, within_days: 0}\n", encoding="utf-8")
    code, _, err = run("segments", "refresh", str(bad))
    assert code != 0 and "bad.yaml:where.within_days: invalid window" in err


def test_as_of_in_the_past_ignores_later_events(loaded: CustomerStore) -> None:
    early = refresh(
        loaded, [BUYERS], classifiers=[], config=replace(TagsConfig()), as_of=datetime(2026, 10, 3, tzinfo=UTC)
    )
    assert early.segments["buyers"][0] == 1  # only Alice's web order (2 October) happened by then


def test_a_segment_the_snapshot_was_not_built_for_reads_its_events_by_position(loaded: CustomerStore) -> None:
    """The refresh reads events by profile position; a later segment's event history is still exact."""
    from cdp.access.context import classifier_context
    from cdp.segments.service import build_snapshot

    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    events = loaded.events_frame(ENGINEER).with_columns(pl.col("profile_id").cast(pl.String))
    people = events["profile_id"].n_unique()
    # An event and a count that some profiles reach and others do not (else any mapping would pass).
    counts = events.group_by("event_name", "profile_id").len()
    name, least = next(
        (str(n), k)
        for (n,), group in counts.sort("event_name").group_by("event_name", maintain_order=True)
        for k in range(1, int(cast("int | None", group["len"].max()) or 0) + 1)
        if 0 < group.filter(pl.col("len") >= k).height < people
    )
    late = Segment("late", "", "profiling", {"event": name, "within_days": 3650, "min_count": least})
    built_for_it, without = (
        build_snapshot(
            loaded,
            classifier_context("profiling"),
            as_of=as_of,
            config=TagsConfig(),
            classifiers=builtin_classifiers(),
            segments=chosen,
        )
        for chosen in ([late], [])
    )
    try:
        expected = built_for_it.engine.evaluate([late])["late"]
        assert callable(built_for_it.engine._events)  # its counts came with the attributes: no events read
        got = without.engine.evaluate([late])["late"]  # its counts made from the events, not the attribute pass
        assert "profile_row" in without.engine.events().columns  # read then, by position
        assert got.to_list() == expected.to_list() and 0 < got.len() < people
    finally:
        built_for_it.close()
        without.close()
