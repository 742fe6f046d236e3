"""The audit log: every access recorded, in the same transaction; tampering detected."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from fixtures import write_fixture_files
from sqlalchemy import text

from cdp._exceptions import AccessDenied, PurposeRequired
from cdp.access import AccessContext, CustomerStore
from cdp.pipeline import SourceSpec, ingest, resolve

OFFICER = AccessContext("officer:ann", "compliance_officer", "compliance")


@pytest.fixture
def populated(store: CustomerStore, tmp_path: Path) -> CustomerStore:
    for name, path in write_fixture_files(tmp_path / "src").items():
        ingest(store, store.settings, SourceSpec(name, {"path": str(path)}))
    resolve(store, store.settings)
    store.read_profiles(OFFICER, ["email", "country"])
    store.checkpoint_now()
    return store


def _sql(store: CustomerStore, statement: str, **params: object) -> None:
    # Tests play the attacker with direct database access.
    with store.engine.begin() as connection:
        connection.execute(text(statement), params)


def test_every_access_is_recorded_with_context(populated: CustomerStore) -> None:
    rows = populated.search_audit(OFFICER, actor="officer:ann", limit=10)
    read = next(r for r in rows if r["resource"] == "profiles" and r["action"] == "read")
    assert read["role"] == "compliance_officer" and read["purpose"] == "compliance" and read["decision"] == "allow"
    assert read["subject_count"] == len(read["subjects"]) > 0
    assert "email" in read["fields"] and "roles.yaml" in read["rule"]
    writes = populated.search_audit(OFFICER, actor="connector:pos")
    assert writes and all(w["action"] == "write" for w in writes)


def test_denials_are_audited_and_fail_closed(populated: CustomerStore) -> None:
    with pytest.raises(AccessDenied):
        populated.read_profiles(AccessContext("mallory", "marketer", "compliance"), ["email"])
    with pytest.raises(PurposeRequired):
        populated.read_profiles(AccessContext("mallory", "marketer", ""), ["email"])
    with pytest.raises(PurposeRequired):
        populated.read_profiles(AccessContext("", "marketer", "marketing_email"), ["email"])
    denied = populated.search_audit(OFFICER, decision="deny")
    assert len(denied) == 3 and {d["actor"] for d in denied} == {"mallory", "-"}


def test_verify_passes_on_an_intact_log(populated: CustomerStore) -> None:
    result = populated.verify_audit(OFFICER)
    assert result.ok and result.checked > 10 and result.checkpoints_checked >= 1


@pytest.mark.parametrize(
    ("attack", "statement"),
    [
        ("edit", "UPDATE audit_log SET detail = detail || 'x' WHERE seq = 5"),
        ("edit-one-byte", "UPDATE audit_log SET actor = 'connector:poz' WHERE seq = 5 AND actor = 'connector:pos'"),
        ("delete", "DELETE FROM audit_log WHERE seq = 5"),
    ],
)
def test_tampering_is_detected_and_the_first_bad_record_named(
    populated: CustomerStore, attack: str, statement: str
) -> None:
    if attack == "edit-one-byte":
        _sql(populated, "UPDATE audit_log SET actor = 'connector:pos' WHERE seq = 5")
        # the line above itself is an edit of record 5 unless it already was connector:pos
    _sql(populated, statement)
    result = populated.verify_audit(OFFICER)
    assert not result.ok
    assert result.first_bad_seq == 5


def test_reordering_is_detected(populated: CustomerStore) -> None:
    _sql(populated, "UPDATE audit_log SET seq = -1 WHERE seq = 4")
    _sql(populated, "UPDATE audit_log SET seq = 4 WHERE seq = 5")
    _sql(populated, "UPDATE audit_log SET seq = 5 WHERE seq = -1")
    result = populated.verify_audit(OFFICER)
    assert not result.ok and result.first_bad_seq == 4


def test_tail_truncation_is_caught_by_the_checkpoint_kept_outside_the_database(populated: CustomerStore) -> None:
    head = populated.search_audit(OFFICER, limit=1)[0]["seq"]
    populated.checkpoint_now()
    _sql(populated, "DELETE FROM audit_log WHERE seq > :cut", cut=head - 3)
    _sql(populated, "DELETE FROM audit_checkpoints")
    result = populated.verify_audit(OFFICER)
    assert not result.ok and "truncated" in result.reason


def test_forged_checkpoint_signature_is_rejected(populated: CustomerStore) -> None:
    lines = populated.checkpoints_file.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[-1])
    record["signature"] = ("00" if record["signature"][:2] != "00" else "11") + record["signature"][2:]
    populated.checkpoints_file.write_text("\n".join([*lines[:-1], json.dumps(record)]) + "\n", encoding="utf-8")
    _sql(
        populated, "UPDATE audit_checkpoints SET signature = :s WHERE seq = :q", s=record["signature"], q=record["seq"]
    )
    assert not populated.verify_audit(OFFICER).ok


def test_audit_is_written_in_the_same_transaction_as_the_data(
    store: CustomerStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cdp.access import audit

    files = write_fixture_files(tmp_path / "src")

    def broken_append(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "append", broken_append)
    with pytest.raises(RuntimeError):
        ingest(store, store.settings, SourceSpec("pos", {"path": str(files["pos"])}))
    monkeypatch.undo()
    counts = store.counts(AccessContext("t", "data_engineer", "operations"))
    assert not any(key.startswith("records:") for key in counts), "data was written without its audit record"


def test_a_consistently_rewritten_chain_is_caught_by_the_signed_checkpoint(populated: CustomerStore) -> None:
    from cdp.access.audit import GENESIS, row_hash

    # The attacker edits record 3 and recomputes every later hash so the chain itself verifies.
    with populated.engine.begin() as connection:
        rows = [dict(r._mapping) for r in connection.execute(text("SELECT * FROM audit_log ORDER BY seq"))]
        rows[2]["detail"] = "nothing to see here"
        previous = GENESIS
        for row in rows:
            row["prev_hash"] = previous
            row["hash"] = row_hash(previous, row)
            previous = row["hash"]
            connection.execute(
                text("UPDATE audit_log SET detail = :detail, prev_hash = :prev_hash, hash = :hash WHERE seq = :seq"),
                row,
            )
    result = populated.verify_audit(OFFICER)
    assert not result.ok and "checkpoint" in result.reason


def test_export_cells_cannot_run_as_spreadsheet_formulas() -> None:
    from cdp.segments.export import escape_cell

    for dangerous in ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"):
        assert escape_cell(dangerous).startswith("'")
    assert escape_cell("alice@example.com") == "alice@example.com" and escape_cell(None) == ""


def test_checkpoints_are_signed_every_n_rows_across_processes(store: CustomerStore) -> None:
    # settings.audit_checkpoint_every is 50 in the test settings.
    for _ in range(120):
        store.counts(OFFICER)
    with store.engine.connect() as connection:
        signed = [int(s) for (s,) in connection.execute(text("SELECT seq FROM audit_checkpoints ORDER BY seq"))]
    assert signed[:2] == [50, 100], signed
    # A second store on the same database (another process) keeps to the same rhythm: it learns
    # where the last checkpoint is instead of signing after every access or never.
    from cdp.access import open_store

    other = open_store(store.settings)
    for _ in range(60):
        other.counts(OFFICER)
    other.close()
    with store.engine.connect() as connection:
        signed = [int(s) for (s,) in connection.execute(text("SELECT seq FROM audit_checkpoints ORDER BY seq"))]
        head = int(connection.execute(text("SELECT max(seq) FROM audit_log")).scalar() or 0)
    assert signed[:3] == [50, 100, 150], signed
    assert head - signed[-1] < 50
    assert all(b - a == 50 for a, b in itertools.pairwise(signed)), signed
