"""Retention runs (dry run and real) and the records-of-processing report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fixtures import write_fixture_files

from cdp.access import AccessContext, CustomerStore
from cdp.consent.report import processing_record
from cdp.pipeline import SourceSpec, ingest, resolve

OFFICER = AccessContext("officer", "compliance_officer", "compliance")


def _populate(store: CustomerStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name, path in write_fixture_files(tmp_path / "src").items():
        ingest(store, store.settings, SourceSpec(name, {"path": str(path)}))
    resolve(store, store.settings)


def test_retention_dry_run_counts_and_real_run_deletes(store: CustomerStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _populate(store, tmp_path)
    # web events are kept 395 days: 400 days after the fixtures' October 2026 events, they are due
    later = datetime(2026, 10, 3, tzinfo=UTC) + timedelta(days=400)
    before = store.counts(AccessContext("e", "data_engineer", "operations"))["events"]
    dry = {r["rule"]: r for r in store.apply_retention(OFFICER, dry_run=True, at=later)}
    assert dry["events:website"]["affected"] >= 3 and dry["events:website"]["deleted"] == 0
    assert store.counts(AccessContext("e", "data_engineer", "operations"))["events"] == before
    real = {r["rule"]: r for r in store.apply_retention(OFFICER, dry_run=False, at=later)}
    assert real["events:website"]["deleted"] == dry["events:website"]["affected"]
    after = store.counts(AccessContext("e", "data_engineer", "operations"))["events"]
    assert after == before - real["events:website"]["deleted"]
    assert store.apply_retention(OFFICER, dry_run=True, at=later)[0]["affected"] == 0
    audited = store.search_audit(OFFICER, action="erase")
    assert any(r["resource"] == "retention" for r in audited)
    assert any(r["resource"] == "retention" for r in store.search_audit(OFFICER, action="read"))


def test_retention_now_deletes_nothing_recent(store: CustomerStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _populate(store, tmp_path)
    assert all(
        r["affected"] == 0 for r in store.apply_retention(OFFICER, dry_run=True, at=datetime(2026, 10, 20, tzinfo=UTC))
    )


def test_records_of_processing_reflect_policies_and_live_data(store: CustomerStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _populate(store, tmp_path)
    record = processing_record(store, store.policy.policy, OFFICER)
    held = record["categories_of_personal_data"]
    assert "email" in held["direct_identifier"]["fields"] and set(held["direct_identifier"]["sources"]) == {
        "website",
        "pos",
        "survey",
    }
    assert "postcode" in held["quasi_identifier"]["fields"]
    assert record["sources"] == {"website": 6, "pos": 6, "survey": 2}
    assert record["purposes"]["marketing_email"]["opt_in_jurisdictions"] == ["EU", "UK"]
    assert "marketer" in record["purposes"]["marketing_email"]["roles"]
    assert record["retention_days"]["events:website"] == 395
    assert record["consent_decisions"]["marketing_email:granted"] >= 1
