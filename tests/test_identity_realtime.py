"""Records arriving after a batch resolution find their profiles through the store's match keys."""

from __future__ import annotations

import base64
import csv
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import typer
from litestar.testing import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from cdp.access import AccessContext, CustomerStore
from cdp.access import _tables as t
from cdp.access.context import connector_context, identity_context
from cdp.api import create_app
from cdp.cli import main
from cdp.cli.identity_commands import register
from cdp.demo import generate
from cdp.identity.evaluate import evaluate_assignment, load_labels, scoped_assignment
from cdp.identity.realtime import match_new_records
from cdp.identity.service import resolve_identities
from cdp.model import EventData, IncomingRecord
from cdp.pipeline import SourceSpec, ingest


def _split_csv(path: Path, first: Path, second: Path) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    half = len(body) // 2
    for target, part in ((first, body[:half]), (second, body[half:])):
        with target.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([header, *part])
    return len(body) - half


@pytest.fixture
def late_arrivals(store: CustomerStore, tmp_path: Path) -> tuple[Path, Path]:
    """A resolved store holding web, survey and half of the POS rows; the other half still to come."""
    files = generate(tmp_path / "demo", customers=120, seed=11, as_of=date(2026, 11, 1))
    early, late = tmp_path / "pos-early.csv", tmp_path / "pos-late.csv"
    assert _split_csv(Path(files.pos), early, late) > 50
    ingest(store, store.settings, SourceSpec("website", {"path": str(files.web)}))
    ingest(store, store.settings, SourceSpec("survey", {"path": str(files.survey)}))
    ingest(store, store.settings, SourceSpec("pos", {"path": str(early), "region_from_store_id": True}))
    resolve_identities(store, store.settings)
    return late, Path(files.labels)


def _profile_of(store: CustomerStore, source_record_id: str) -> str | None:
    records = store.identity_features(identity_context(), include_identifiers=False)
    profile_id: str | None = next(r["profile_id"] for r in records if r["source_record_id"] == source_record_id)
    return profile_id


def _linked(store: CustomerStore) -> dict[str, str]:
    records = store.identity_features(identity_context(), include_identifiers=False)
    return {r["record_id"]: r["profile_id"] for r in records if r["profile_id"]}


def test_without_a_trained_model_nothing_is_matched(store: CustomerStore) -> None:
    report = match_new_records(store, store.settings)
    assert report.skipped is not None and "cdp resolve" in report.skipped
    assert report.examined == 0


def test_late_records_join_the_right_profiles_and_nothing_else_moves(
    store: CustomerStore, late_arrivals: tuple[Path, Path]
) -> None:
    late, labels_path = late_arrivals
    before = _linked(store)
    ingest(store, store.settings, SourceSpec("pos", {"path": str(late), "region_from_store_id": True}))
    kinds = {r["record_id"]: r["kind"] for r in store.identity_features(identity_context(), include_identifiers=False)}
    waiting = {r for r in store.unmatched_records(identity_context()) if kinds[r] == "identity"}
    assert len(waiting) > 50

    report = match_new_records(store, store.settings)

    after = _linked(store)
    assert {r: p for r, p in after.items() if r in before} == before  # no earlier link changed
    assert waiting <= set(after)  # every late identified POS record has a profile now
    assert report.joined_existing >= len(waiting) // 3  # about half the late buyers were known before
    assert report.new_profiles >= 1
    assert len(report.latencies_ms) == report.examined - report.left_anonymous - report.followed_identifiers
    records = store.identity_features(identity_context(), include_identifiers=False)
    metrics = evaluate_assignment(scoped_assignment(records), load_labels(labels_path))
    assert metrics.precision >= 0.95, metrics
    assert metrics.recall >= 0.85, metrics
    # The late records' events now belong to their profiles, and the joins are explained.
    with store.engine.connect() as conn:
        orphan_events = conn.execute(
            select(t.events.c.record_id).where(
                t.events.c.record_id.in_(sorted(waiting)), t.events.c.profile_id.is_(None)
            )
        ).all()
        incremental_evidence = conn.execute(
            select(t.match_evidence.c.record_b).where(t.match_evidence.c.record_b.in_(sorted(waiting)))
        ).all()
    assert orphan_events == []
    assert incremental_evidence

    again = match_new_records(store, store.settings)
    assert again.examined == 0 and _linked(store) == after  # idempotent


def test_match_keys_are_short_keyed_digests_written_for_every_record(
    store: CustomerStore, late_arrivals: tuple[Path, Path]
) -> None:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.blind_indexes.c.record_id, t.blind_indexes.c.digest).where(t.blind_indexes.c.kind == "match")
        ).all()
    assert rows
    assert all(len(digest) == 16 and int(digest, 16) >= 0 for _, digest in rows)
    identified = {
        r["record_id"]
        for r in store.identity_features(identity_context(), include_identifiers=False)
        if r["kind"] == "identity"
    }
    assert {record_id for record_id, _ in rows} <= identified
    assert len({record_id for record_id, _ in rows}) >= 0.9 * len(identified)
    assert store.records_without_match_keys(identity_context()) == sorted(
        r["record_id"]
        for r in store.identity_features(identity_context(), include_identifiers=False)
        if r["record_id"] not in {record_id for record_id, _ in rows}
    )


def _web(record_id: str, anonymous_id: str, identity: dict[str, str], when: datetime) -> IncomingRecord:
    return IncomingRecord(
        source="website",
        stream="calls",
        source_record_id=record_id,
        occurred_at=when,
        payload={"messageId": record_id},
        identity=identity,
        match_keys={k: v for k, v in identity.items() if k in ("email", "phone")},
        anonymous_id=anonymous_id,
        events=[EventData("track", when, "Product Viewed", channel="web")] if not identity else [],
    )


def test_anonymous_history_follows_the_device_into_the_new_profile(
    store: CustomerStore, late_arrivals: tuple[Path, Path]
) -> None:
    when = datetime(2026, 11, 20, tzinfo=UTC)
    browse = _web("late-browse-1", "device-xyz", {}, when)
    ingest_ctx = connector_context("website")
    store.ingest(ingest_ctx, [browse])
    first = match_new_records(store, store.settings)
    assert first.new_profiles == 0 and first.joined_existing == 0  # anonymous activity alone makes no profile
    browse_id = next(
        r["record_id"]
        for r in store.identity_features(identity_context(), include_identifiers=False)
        if r["source_record_id"] == "late-browse-1"
    )
    assert browse_id not in _linked(store)
    only = match_new_records(store, store.settings, record_ids=[browse_id])
    assert only.examined == 1 and only.left_anonymous == 1

    person = {"email": "zelda.quartermaine@example.net", "given_name": "Zelda", "family_name": "Quartermaine"}
    store.ingest(ingest_ctx, [_web("late-identify-1", "device-xyz", person, when)])
    second = match_new_records(store, store.settings)
    assert second.new_profiles == 1 and second.followed_identifiers == 1
    assert _profile_of(store, "late-browse-1") == _profile_of(store, "late-identify-1")

    # The same person coming back through the POS joins that profile instead of starting another.
    store.ingest(
        connector_context("pos"),
        [
            IncomingRecord(
                source="pos",
                stream="transactions",
                source_record_id="late-pos-1",
                occurred_at=when,
                payload={"t": 1},
                identity={**person, "phone": "+14155550199"},
                match_keys={"email": person["email"], "phone": "+14155550199"},
            )
        ],
    )
    third = match_new_records(store, store.settings)
    assert third.joined_existing == 1 and third.new_profiles == 0
    assert _profile_of(store, "late-pos-1") == _profile_of(store, "late-identify-1") is not None


def test_match_new_command_reports_what_it_did(
    store: CustomerStore, late_arrivals: tuple[Path, Path], cli_env: dict[str, str]
) -> None:
    late, _ = late_arrivals
    ingest(store, store.settings, SourceSpec("pos", {"path": str(late), "region_from_store_id": True}))
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["identity", "match-new"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    assert "joined an existing profile" in result.stdout and "new profiles" in result.stdout
    assert store.unmatched_records(identity_context(), kinds=("identity",)) == []
    again = CliRunner().invoke(app, ["identity", "match-new"], catch_exceptions=False)
    assert again.exit_code == 0 and "records examined" in again.stdout


def test_cdp_ingest_matches_new_records_once_a_model_exists(
    store: CustomerStore,
    late_arrivals: tuple[Path, Path],
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    late, _ = late_arrivals
    _cdp_ingest_pos(late)
    out = capsys.readouterr().out
    assert "joined existing profiles" in out
    assert store.unmatched_records(identity_context(), kinds=("identity",)) == []


def test_cdp_ingest_no_match_leaves_new_records_for_the_batch(
    store: CustomerStore,
    late_arrivals: tuple[Path, Path],
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    late, _ = late_arrivals
    _cdp_ingest_pos(late, "--no-match")
    assert "joined existing profiles" not in capsys.readouterr().out
    assert len(store.unmatched_records(identity_context(), kinds=("identity",))) > 50


def _cdp_ingest_pos(path: Path, *options: str) -> None:
    """``cdp ingest pos PATH`` (with the region read from store ids), which must exit cleanly."""
    config = path.parent / "pos.yaml"
    config.write_text("region_from_store_id: true\n", encoding="utf-8")
    try:
        main(["ingest", "pos", str(path), "--config", str(config), *options])
    except SystemExit as exit_:
        assert not exit_.code


def test_erasure_removes_a_persons_match_keys(store: CustomerStore, late_arrivals: tuple[Path, Path]) -> None:
    links = _linked(store)
    victim = max(set(links.values()), key=lambda p: sum(1 for v in links.values() if v == p))
    victim_records = sorted(r for r, p in links.items() if p == victim)

    def match_rows(record_ids: list[str]) -> int:
        with store.engine.connect() as conn:
            return len(
                conn.execute(
                    select(t.blind_indexes.c.id).where(
                        t.blind_indexes.c.kind == "match", t.blind_indexes.c.record_id.in_(record_ids)
                    )
                ).all()
            )

    assert match_rows(victim_records) > 0
    store.erase_subject(AccessContext("officer", "compliance_officer", "dsr"), victim)
    assert match_rows(victim_records) == 0


def test_calls_collected_over_http_join_their_profiles_on_arrival(
    store: CustomerStore, late_arrivals: tuple[Path, Path]
) -> None:
    known = next(
        r
        for r in store.identity_features(identity_context())
        if r["source"] == "website" and r["profile_id"] and r["email"] and r["given_name"] and r["family_name"]
    )
    app = create_app(store.settings.with_overrides(write_keys=("k",)), store=store)
    auth = {"Authorization": "Basic " + base64.b64encode(b"k:").decode()}
    with TestClient(app) as client:
        browse = {"type": "track", "event": "Product Viewed", "anonymousId": "device-on-arrival", "messageId": "m-1"}
        assert client.post("/v1/track", json=browse, headers=auth).status_code == 200
        identify = {
            "type": "identify",
            "anonymousId": "device-on-arrival",
            "messageId": "m-2",
            "traits": {"email": known["email"], "firstName": known["given_name"], "lastName": known["family_name"]},
        }
        assert client.post("/v1/identify", json=identify, headers=auth).status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            links = {
                r["source_record_id"]: r["profile_id"]
                for r in store.identity_features(identity_context(), include_identifiers=False)
                if r["source_record_id"] in ("m-1", "m-2")
            }
            if links.get("m-1") and links.get("m-2"):
                break
            time.sleep(0.1)
    assert links == {"m-1": known["profile_id"], "m-2": known["profile_id"]}, links


def test_matching_on_arrival_can_be_switched_off(store: CustomerStore, late_arrivals: tuple[Path, Path]) -> None:
    app = create_app(store.settings.with_overrides(write_keys=("k",), match_on_arrival=False), store=store)
    auth = {"Authorization": "Basic " + base64.b64encode(b"k:").decode()}
    with TestClient(app) as client:
        call = {"type": "identify", "userId": "u-off-1", "messageId": "m-off", "traits": {"email": "off@example.org"}}
        assert client.post("/v1/identify", json=call, headers=auth).status_code == 200
        time.sleep(0.5)
    stored = [
        r
        for r in store.identity_features(identity_context(), include_identifiers=False)
        if r["source_record_id"] == "m-off"
    ]
    assert len(stored) == 1 and stored[0]["profile_id"] is None
