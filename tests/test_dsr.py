"""Data-subject requests end to end on a generated population."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from demo_helpers import build, find_plaintext, labels, plaintexts

from cdp._exceptions import AccessDenied, Conflict, NotFound
from cdp.access import AccessContext, CustomerStore
from cdp.consent.dsr import DataSubjectRequests
from cdp.demo import DemoFiles
from cdp.pipeline import DEMO_SEGMENTS_DIR, SourceSpec, export, ingest, refresh_segments
from cdp.segments.service import load_segment_file

OFFICER = AccessContext("officer:ann", "compliance_officer", "dsr")
SVC = AccessContext("service:identity", "svc_identity", "identity_resolution")


@pytest.fixture
def demo(store: CustomerStore, tmp_path: Path) -> DemoFiles:
    return build(store, tmp_path / "demo", customers=200)


def _records_by_source_id(store: CustomerStore) -> dict[tuple[str, str], dict[str, object]]:
    return {(f["source"], f["source_record_id"]): f for f in store.identity_features(SVC)}


def _person_in_three_sources(store: CustomerStore, demo: DemoFiles) -> tuple[str, str, list[tuple[str, str]]]:
    """An entity with records in all three sources that resolution put in one profile."""
    stored = _records_by_source_id(store)
    for entity, items in sorted(labels(demo).items()):
        kept = [i for i in items if i in stored and stored[i]["kind"] == "identity"]
        if {s for s, _ in kept} != {"website", "pos", "survey"}:
            continue
        profiles = {stored[i]["profile_id"] for i in kept}
        emails = {str(stored[i]["email"]) for i in kept if stored[i]["email"]}
        if len(profiles) == 1 and emails:
            return entity, sorted(emails)[0], kept
    pytest.skip("no fully linked three-source person in this sample")


def test_access_request_finds_every_record_from_every_source(store: CustomerStore, demo: DemoFiles) -> None:
    _, email, items = _person_in_three_sources(store, demo)
    outcome = DataSubjectRequests(store, store.settings).run(OFFICER, kind="access", identifier=email.upper())
    data_file, summary = outcome.files
    exported = {
        (r["source"], r["source_record_id"])
        for r in __import__("json").loads(data_file.read_text(encoding="utf-8"))["records"]
    }
    assert set(items) <= exported
    assert {s for s, _ in exported} >= {"website", "pos", "survey"}
    assert "source record(s)" in summary.read_text(encoding="utf-8")
    assert data_file.stat().st_mode & 0o077 == 0
    request = store.get_request(OFFICER, outcome.request_id)
    assert request["status"] == "done" and request["profile_id"] == outcome.profile_id


def test_erasure_leaves_nothing_readable_and_blocks_reingestion(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    _, email, items = _person_in_three_sources(store, demo)
    requests = DataSubjectRequests(store, store.settings)
    access = requests.run(OFFICER, kind="access", identifier=email)
    profile = access.profile_id
    assert profile is not None
    definition = load_segment_file(DEMO_SEGMENTS_DIR / "active_high_value.yaml")
    refresh_segments(store, [definition])
    export(store, store.settings, definition)
    secrets = plaintexts(demo, only=set(items))
    assert secrets.emails

    outcome = requests.run(OFFICER, kind="erasure", identifier=email)
    assert outcome.result["keys_shredded"] >= 1 and outcome.result["records_deleted"] >= len(items)

    # 1. the database and every file cdp manages (exports, access files, DuckDB files) hold nothing readable of theirs
    from test_privacy_core import _cells

    leaks = [
        f"{where}: {hit}" for where, blob in _cells(store) for hit in find_plaintext(blob, secrets, check_names=False)
    ]
    assert leaks == []
    for path in store.settings.data_dir.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".txt", ".duckdb", ".jsonl"):
            assert find_plaintext(path.read_bytes(), secrets, check_names=False) == [], path
    assert not access.files[0].exists()
    # 2. segments no longer count them
    report = refresh_segments(store, [definition])
    assert profile not in store.segment_members(AccessContext("m", "marketer", "marketing_email"), "active_high_value")
    assert report.profiles >= 1
    # 3. re-ingesting their source records is caught by suppression
    stats = ingest(store, store.settings, SourceSpec("survey", {"path": str(_copy(demo.survey, tmp_path))}))
    assert stats.suppressed >= 1
    assert store.find_profiles(OFFICER, kind="email", value=_match_key(email)) == []


def _copy(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"again-{Path(path).name}"
    target.write_bytes(Path(path).read_bytes() + b"\r\n")
    return target


def _match_key(email: str) -> str:
    from cdp.identity.normalize import normalize_email

    normalised = normalize_email(email)
    assert normalised is not None
    return normalised.match_key


def test_withdrawn_marketing_consent_removes_the_person_from_the_next_export(
    store: CustomerStore, demo: DemoFiles
) -> None:
    definition = load_segment_file(DEMO_SEGMENTS_DIR / "active_high_value.yaml")
    refresh_segments(store, [definition])
    first = export(store, store.settings, definition)
    with first.path.open(encoding="utf-8") as handle:
        exported = [row["profile_id"] for row in csv.DictReader(handle)]
    assert exported, "the demo segment should export someone"
    person = exported[0]
    store.record_consent(
        AccessContext("officer", "compliance_officer", "compliance"),
        person,
        purpose="marketing_email",
        status="withdrawn",
    )
    second = export(store, store.settings, definition)
    with second.path.open(encoding="utf-8") as handle:
        again = [row["profile_id"] for row in csv.DictReader(handle)]
    assert person not in again and len(again) == len(exported) - 1


def test_overdue_requests_are_listed(store: CustomerStore, demo: DemoFiles) -> None:
    requests = DataSubjectRequests(store, store.settings)
    _, email, _ = _person_in_three_sources(store, demo)
    done = requests.run(OFFICER, kind="access", identifier=email, regime="CCPA")
    pending = store.open_request(OFFICER, kind="erasure", regime="GDPR", deadline_days=30, detail={})
    assert requests.overdue(OFFICER) == []
    later = requests.overdue(OFFICER, at=datetime.now(UTC) + timedelta(days=31))
    assert [r["id"] for r in later] == [pending]
    ccpa = store.get_request(OFFICER, done.request_id)
    assert (ccpa["due_at"] - ccpa["received_at"]).days == 45


def test_bad_requests_are_refused_and_audited(store: CustomerStore, demo: DemoFiles) -> None:
    requests = DataSubjectRequests(store, store.settings)
    with pytest.raises(NotFound):
        requests.run(OFFICER, kind="access", identifier="nobody-at-all@example.invalid")
    # an identifier shared by two profiles (a household's landline) is refused
    stored = store.identity_features(SVC)
    phones: dict[str, set[str]] = {}
    for f in stored:
        if f["phone"] and f["profile_id"]:
            phones.setdefault(str(f["phone"]), set()).add(str(f["profile_id"]))
    shared = [p for p, owners in phones.items() if len(owners) > 1]
    if shared:
        with pytest.raises(Conflict):
            requests.run(OFFICER, kind="access", identifier=shared[0])
    with pytest.raises(AccessDenied):
        requests.run(AccessContext("mallory", "marketer", "dsr"), kind="erasure", identifier="x@example.com")
    rejected = [r for r in store.requests(OFFICER) if r["status"] == "rejected"]
    assert len(rejected) == 1 + bool(shared)
    denials = store.search_audit(AccessContext("a", "compliance_officer", "compliance"), decision="deny")
    assert any(d["actor"] == "mallory" for d in denials)


def test_consent_withdrawn_during_an_export_is_fenced_out(
    store: CustomerStore, demo: DemoFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdp.segments.export import export_csv

    definition = load_segment_file(DEMO_SEGMENTS_DIR / "active_high_value.yaml")
    refresh_segments(store, [definition])
    members = store.segment_members(AccessContext("m", "marketer", "marketing_email"), "active_high_value")
    assert len(members) >= 3
    original = store.read_profiles
    calls = {"n": 0}
    victim: dict[str, str] = {}

    def read_then_withdraw(*args: object, **kwargs: object) -> list[dict[str, object]]:
        rows = original(*args, **kwargs)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 1 and rows:
            # The person withdraws while the export is still running (after their chunk was read).
            victim["id"] = str(rows[0]["profile_id"])
            store.record_consent(
                AccessContext("officer", "compliance_officer", "compliance"),
                victim["id"],
                purpose="marketing_email",
                status="withdrawn",
            )
        return rows

    monkeypatch.setattr(store, "read_profiles", read_then_withdraw)
    report = export_csv(
        store, "active_high_value", purpose="marketing_email", out_dir=store.settings.exports_dir, chunk_size=2
    )
    monkeypatch.undo()
    assert calls["n"] >= 2 and victim
    with report.path.open(encoding="utf-8") as handle:
        exported = {row["profile_id"] for row in csv.DictReader(handle)}
    assert victim["id"] not in exported and len(exported) == report.written
    export_rows = store.subject_export(OFFICER, victim["id"])["exports"]
    assert all(e["export_id"] != report.export_id for e in export_rows)


def test_erasures_are_replayed_after_a_restore_from_backup(
    store: CustomerStore, demo: DemoFiles, tmp_path: Path
) -> None:
    if not store.settings.is_sqlite:
        pytest.skip("the file-copy backup below is SQLite-specific")
    import sqlite3

    database = Path(store.settings.database_url.removeprefix("sqlite:///"))
    _, email, _ = _person_in_three_sources(store, demo)
    backup = tmp_path / "backup.sqlite"
    with sqlite3.connect(database) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    outcome = DataSubjectRequests(store, store.settings).run(OFFICER, kind="erasure", identifier=email)
    store.engine.dispose()
    with sqlite3.connect(backup) as source, sqlite3.connect(database) as target:
        source.backup(target)
    # the restored database has the person's records again (unreadable: their keys are gone) ...
    assert store.find_profiles(OFFICER, kind="email", value=_match_key(email)) == [outcome.profile_id]
    result = store.replay_erasures(AccessContext("officer", "compliance_officer", "dsr"))
    assert result["profiles_erased_again"] == 1 and result["records_deleted"] >= 3
    assert store.find_profiles(OFFICER, kind="email", value=_match_key(email)) == []
    stats = ingest(store, store.settings, SourceSpec("survey", {"path": str(_copy(demo.survey, tmp_path))}))
    assert stats.suppressed >= 1


def test_withdrawal_takes_effect_on_the_next_segment_refresh(store: CustomerStore, demo: DemoFiles) -> None:
    definition = load_segment_file(DEMO_SEGMENTS_DIR / "active_high_value.yaml")
    refresh_segments(store, [definition])
    reader = AccessContext("m", "marketer", "marketing_email")
    members = store.segment_members(reader, "active_high_value")
    assert members
    person = members[0]
    store.record_consent(
        AccessContext("officer", "compliance_officer", "compliance"),
        person,
        purpose="marketing_email",
        status="withdrawn",
    )
    report = refresh_segments(store, [definition])
    after = store.segment_members(reader, "active_high_value")
    assert person not in after and len(after) == len(members) - 1
    assert report.segments["active_high_value"][2] == 1  # one member exited


def _split_off_a_record_sharing_its_key(store: CustomerStore) -> tuple[str, str, str, str]:
    """(person, key, the split-off record, its new profile): two people whose records share one data key."""
    from sqlalchemy import select

    from cdp.access import _tables as t
    from cdp.identity.manual import split_record

    engineer = AccessContext("user:eng", "data_engineer", "operations")
    with store.engine.begin() as conn:
        rows = conn.execute(
            select(t.record_links.c.profile_id, t.records.c.id, t.records.c.key_id)
            .join(t.records, t.records.c.id == t.record_links.c.record_id)
            .where(t.record_links.c.unlinked_at.is_(None))
            .order_by(t.records.c.id)
        ).all()
    by_person_key: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        by_person_key.setdefault((row.profile_id, row.key_id), []).append(row.id)
    (person, key), records = next((pk, ids) for pk, ids in sorted(by_person_key.items()) if len(ids) > 1)
    split_record(store, engineer, records[-1], reason="test")
    moved_to = {f["record_id"]: f["profile_id"] for f in store.identity_features(SVC)}[records[-1]]
    assert moved_to != person
    return person, key, records[-1], str(moved_to)


def _records_under(store: CustomerStore, key: str, profile_id: str | None = None) -> set[str]:
    """Ids of the linked records under data key ``key`` (of one profile, if given)."""
    from sqlalchemy import select

    from cdp.access import _tables as t

    query = (
        select(t.records.c.id)
        .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
        .where(t.records.c.key_id == key, t.record_links.c.unlinked_at.is_(None))
    )
    if profile_id is not None:
        query = query.where(t.record_links.c.profile_id == profile_id)
    with store.engine.begin() as conn:
        return set(conn.execute(query).scalars())


def test_erasure_gives_another_person_sharing_the_key_a_key_of_their_own(loaded: CustomerStore) -> None:
    store = loaded
    person, key, other_record, other = _split_off_a_record_sharing_its_key(store)
    before = {f["record_id"]: f for f in store.identity_features(SVC)}[other_record]
    # the records under that key outside this person: the one split off, and any other profile's
    # (ingestion shares a key among records with a common identifier that resolution may keep apart)
    foreign = _records_under(store, key) - _records_under(store, key, person)
    assert other_record in foreign
    result = store.erase_subject(OFFICER, person)
    assert result["records_rekeyed"] == len(foreign)
    assert not _records_under(store, key)  # none of them left under the shredded key
    after = {f["record_id"]: f for f in store.identity_features(SVC)}[other_record]
    assert after == before and after["profile_id"] == other  # still readable, under another key


def test_erasure_after_the_shared_key_was_shredded_leaves_the_other_record_shredded(loaded: CustomerStore) -> None:
    """A key already destroyed cannot (and need not) be re-keyed: erasure must not fail on it."""
    store = loaded
    person, key, other_record, _ = _split_off_a_record_sharing_its_key(store)
    foreign = _records_under(store, key) - _records_under(store, key, person)
    with store.engine.begin() as conn:
        assert store.shred_keys(conn, [key]) == 1
    store.erase_subject(OFFICER, person)
    assert person not in {f["profile_id"] for f in store.identity_features(SVC)}
    assert other_record in foreign and _records_under(store, key) == foreign  # left as they were: shredded


def test_rectifying_a_person_whose_keys_were_all_shredded_stores_the_correction_under_a_new_key(
    loaded: CustomerStore,
) -> None:
    from sqlalchemy import select

    from cdp.access import _tables as t

    store = loaded
    person = store.read_profiles(OFFICER, ["email"])[0]["profile_id"]
    with store.engine.begin() as conn:
        keys = sorted(
            set(
                conn.execute(
                    select(t.records.c.key_id)
                    .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
                    .where(t.record_links.c.profile_id == person, t.record_links.c.unlinked_at.is_(None))
                ).scalars()
            )
        )
        store.shred_keys(conn, keys)
    record = store.rectify(OFFICER, person, {"given_name": "Corrected", "city": "Lyon"}, request_id="rq-1")
    with store.engine.begin() as conn:
        key = conn.execute(select(t.records.c.key_id).where(t.records.c.id == record)).scalar_one()
    assert key not in keys
    (row,) = store.read_profiles(OFFICER, ["given_name", "city"], profile_ids=[person])
    assert row["given_name"] == "Corrected" and row["city"] == "Lyon"
