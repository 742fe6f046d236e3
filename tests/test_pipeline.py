"""Ingest → resolve → tags/segments → export on hand-made files with known truth."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from fixtures import TRUTH, write_fixture_files

from cdp.access import AccessContext, CustomerStore
from cdp.pipeline import DEMO_SEGMENTS_DIR, SourceSpec, export, ingest, refresh_segments, resolve
from cdp.segments.service import load_segment_file

OFFICER = AccessContext("officer", "compliance_officer", "compliance")
ENGINEER = AccessContext("eng", "data_engineer", "operations")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return write_fixture_files(tmp_path / "src")


def _ingest_all(store: CustomerStore, files: dict[str, Path]) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for name, path in files.items():
        s = ingest(store, store.settings, SourceSpec(name, {"path": str(path)}))
        out[name] = (s.read, s.accepted, s.rejected, s.duplicates)
    return out


def test_ingest_counts_and_quarantine(store: CustomerStore, files: dict[str, Path]) -> None:
    stats = _ingest_all(store, files)
    assert stats == {"website": (8, 6, 2, 0), "pos": (8, 6, 2, 0), "survey": (3, 2, 1, 0)}
    entries = store.quarantine_entries(ENGINEER)
    reasons = {(e["source"], e["field"]): e["reason"] for e in entries}
    assert ("pos", "amount") in reasons and "t-bad-amount" in reasons[("pos", "amount")]
    assert ("survey", "nps") in reasons
    assert any(e["source"] == "pos" and "columns" in e["reason"] and e["position"] == "pos.csv:9" for e in entries)
    assert any(
        e["source"] == "website" and "invalid JSON" in e["reason"] and e["position"] == "web.jsonl:4" for e in entries
    )
    assert any(e["source"] == "website" and e["field"] == "userId" for e in entries)


def test_reingesting_is_a_no_op(store: CustomerStore, files: dict[str, Path], tmp_path: Path) -> None:
    _ingest_all(store, files)
    again = _ingest_all(store, files)
    assert all(v == (0, 0, 0, 0) for v in again.values())
    copy = tmp_path / "copy.csv"
    copy.write_bytes(files["pos"].read_bytes() + b"t-new-1,S1,2026-10-20T12:00:00Z,,,,,[],5.00,USD,,,,US\n")
    stats = ingest(store, store.settings, SourceSpec("pos", {"path": str(copy)}))
    assert (stats.accepted, stats.duplicates) == (1, 6)
    positions = sorted(e["position"] for e in store.quarantine_entries(ENGINEER, source="pos"))
    assert positions == ["copy.csv:8", "copy.csv:9", "pos.csv:8", "pos.csv:9"]


def test_resolution_matches_the_truth_and_keeps_ids_stable(store: CustomerStore, files: dict[str, Path]) -> None:
    _ingest_all(store, files)
    first = resolve(store, store.settings)
    features = store.identity_features(
        AccessContext("service:identity", "svc_identity", "identity_resolution"), include_identifiers=False
    )
    by_payload_id = _source_ids(store)
    profile_of = {by_payload_id[f["record_id"]]: f["profile_id"] for f in features if f["record_id"] in by_payload_id}
    truth_groups: dict[str, set[str]] = defaultdict(set)
    for source_id, person in TRUTH.items():
        truth_groups[person].add(profile_of[source_id])
    assert all(len(profiles) == 1 for profiles in truth_groups.values()), truth_groups
    assert len({next(iter(p)) for p in truth_groups.values()}) == len(truth_groups)
    assert first.stats.profiles == 5
    second = resolve(store, store.settings)
    assert (second.stats.created, second.stats.relinked, second.stats.kept) == (0, 0, 5)


def _source_ids(store: CustomerStore) -> dict[str, str]:
    ctx = AccessContext("service:identity", "svc_identity", "identity_resolution")
    out = {}
    for f in store.identity_features(ctx):
        out[f["record_id"]] = f["source_record_id"]
    return out


def test_segment_and_export_respect_consent(store: CustomerStore, files: dict[str, Path]) -> None:
    _ingest_all(store, files)
    resolve(store, store.settings)
    definition = load_segment_file(DEMO_SEGMENTS_DIR / "active_high_value.yaml")
    report = refresh_segments(store, [definition])
    size = report.segments["active_high_value"][0]
    assert size >= 1
    result = export(store, store.settings, definition)
    with result.path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result.written
    emails = {r["email"] for r in rows}
    assert "lees@example.net" not in emails  # Mary Lee said no to marketing; John Lee is not a high-value buyer
    assert result.path.stat().st_mode & 0o077 == 0
