"""The command line: help on every command; bad input gives one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import write_fixture_files

from cdp.cli import main

COMMANDS = [
    ["demo"],
    ["ingest"],
    ["ingest-files"],
    ["resolve"],
    ["segments"],
    ["export"],
    ["serve"],
    ["db", "upgrade"],
    ["audit", "verify"],
    ["audit", "search"],
    ["audit", "checkpoint"],
    ["policy", "explain"],
    ["quarantine", "list"],
    ["quarantine", "replay"],
    ["connectors", "list"],
    ["keys", "rotate"],
    ["connectors", "new"],
    ["dsr", "access"],
    ["dsr", "erase"],
    ["dsr", "overdue"],
    ["consent", "set"],
    ["retention", "run"],
    ["report", "processing"],
    ["identity", "match-new"],
]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0 and "Usage" in out


def test_unknown_source_file_is_one_line(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["ingest", "pos", "no-such-file.csv"], capsys)
    assert code != 0
    assert err.strip().count("\n") == 0 and "no-such-file.csv" in err and "Traceback" not in err


def test_unknown_connector_is_one_line(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = write_fixture_files(tmp_path / "src")
    code, _, err = run(["ingest", "fax", str(files["pos"])], capsys)
    assert code != 0 and "unknown connector 'fax'" in err and err.strip().count("\n") == 0


def test_unreadable_database_url_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("not a url at all", "postgresql+psycopg://nobody:secret@127.0.0.1:1/none", "mysql+nosuchdriver://x/y"):
        monkeypatch.setenv("CDP_DATABASE_URL", url)
        code, _, err = run(["db", "upgrade"], capsys)
        assert code != 0, url
        assert err.startswith("error: ") and err.strip().count("\n") == 0 and "Traceback" not in err
        assert "secret" not in err


def test_malformed_rows_are_quarantined_not_fatal(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = write_fixture_files(tmp_path / "src")
    code, out, _ = run(["ingest", "pos", str(files["pos"])], capsys)
    assert code == 0 and "quarantined" in out
    code, out, _ = run(["quarantine", "list", "--role", "data_engineer", "--purpose", "operations"], capsys)
    assert code == 0 and "pos.csv:9" in out and "columns" in out
    assert "quarantine show ID" in out  # where the full reason is


def test_quarantine_list_drops_the_place_from_reasons() -> None:
    from cdp.cli.admin_commands import _short_reason

    assert _short_reason({"reason": "record r-1, field 'phone': is not a valid phone number"}) == (
        "is not a valid phone number"
    )
    assert _short_reason({"reason": "record r-1: ragged row"}) == "ragged row"
    assert _short_reason({"reason": "field 'email': too long"}) == "too long"
    # a reason that merely starts like a place keeps its text
    assert _short_reason({"reason": "record too large: 40 KB"}) == "record too large: 40 KB"
    assert _short_reason({"reason": None}) == ""


def test_missing_role_is_refused(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CDP_ROLE", raising=False)
    run(["db", "upgrade"], capsys)
    code, _, err = run(["audit", "search", "--role", "marketer", "--purpose", "marketing_email"], capsys)
    assert code != 0 and "access denied" in err


def test_audit_and_policy_commands(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    files = write_fixture_files(tmp_path / "src")
    assert run(["ingest", "website", str(files["website"])], capsys)[0] == 0
    code, out, _ = run(["audit", "verify"], capsys)
    assert code == 0 and "audit log OK" in out
    code, out, _ = run(["audit", "search", "--actor", "connector:website", "--format", "csv"], capsys)
    assert code == 0 and out.startswith("seq,at,actor") and "connector:website" in out
    code, out, _ = run(
        ["policy", "explain", "--role", "marketer", "--purpose", "marketing_email", "--field", "email"], capsys
    )
    assert code == 0 and "ALLOW" in out


def test_compliance_commands(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    files = write_fixture_files(tmp_path / "src")
    for name, path in files.items():
        assert run(["ingest", name, str(path)], capsys)[0] == 0
    assert run(["resolve"], capsys)[0] == 0
    code, out, err = run(["dsr", "access", "alice.smith@example.com"], capsys)
    assert code == 0, err
    assert "done" in out and ".json" in out
    code, out, _ = run(["dsr", "list"], capsys)
    assert code == 0 and "access" in out
    code, out, _ = run(["dsr", "overdue"], capsys)
    assert code == 0 and "(0)" in out
    code, _, err = run(["dsr", "erase", "ghost@example.com"], capsys)
    assert code != 0 and err.startswith("error: ") and "no person found" in err
    code, out, _ = run(["retention", "run", "--dry-run"], capsys)
    assert code == 0 and "events:website" in out
    code, out, _ = run(["report", "processing", "--format", "json"], capsys)
    assert code == 0 and "direct_identifier" in out
    code, _, err = run(["dsr", "erase", "alice.smith@example.com", "--role", "marketer"], capsys)
    assert code != 0 and "access denied" in err


def test_ingest_files_reads_a_manifests_sources_in_one_run(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = write_fixture_files(tmp_path / "src")
    (tmp_path / "src" / "pos.yaml").write_text("region_from_store_id: false\n", encoding="utf-8")
    manifest = tmp_path / "src" / "drop.yaml"
    manifest.write_text(
        "sources:\n"
        "  - {connector: website, path: web.jsonl}\n"
        "  - {connector: pos, path: pos.csv, config_file: pos.yaml}\n"
        "  - {connector: survey, path: survey.csv, config: {}}\n",
        encoding="utf-8",
    )
    code, out, _ = run(["ingest-files", str(manifest), "--no-match"], capsys)
    assert code == 0 and all(name in out for name in ("website", "pos", "survey")) and "quarantined" in out
    code, out, _ = run(["quarantine", "list", "--role", "data_engineer", "--purpose", "operations"], capsys)
    assert code == 0 and "pos.csv:9" in out  # the fixture's ragged row, as `cdp ingest` quarantines it
    from cdp.access import AccessContext, open_store
    from cdp.settings import load_settings

    opened = open_store(load_settings())
    try:
        counts = opened.counts(AccessContext("t", "data_engineer", "operations"))
    finally:
        opened.close()
    assert all(counts.get(f"records:{name}", 0) > 0 for name in files)
    code, out, _ = run(["ingest-files", str(manifest), "--no-match"], capsys)
    assert code == 0 and " ".join(out.split()).count("was already ingested: skipped") == 3


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("just text\n", "'sources' must be a non-empty list"),
        ("sources: []\n", "'sources' must be a non-empty list"),
        ("sources: [plain]\n", "sources[0] must be a mapping"),
        ("sources:\n  - {connector: pos}\n", "sources[0].path: required"),
        ("sources:\n  - {connector: pos, path: pos.csv, mapping: x}\n", "sources[0].mapping: unknown key"),
        ("sources:\n  - {connector: pos, path: nowhere.csv}\n", "sources[0].path: source file not found"),
        ("sources:\n  - {connector: pos, path: pos.csv, config: [1]}\n", "sources[0].config must be a mapping"),
        ("sources:\n  - {connector: pos, path: pos.csv, config_file: no.yaml}\n", "sources[0].config_file"),
        ("sources:\n  - {connector: pos, path: pos.csv}\n  - {connector: pos, path: pos.csv}\n", "appears twice"),
        ("sources: [\n", "not a YAML file"),
        ("sources:\n  - {connector: pos, path: pos.csv, config_file: bad.yaml}\n", "config_file: "),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_entry(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path, manifest: str, message: str
) -> None:
    write_fixture_files(tmp_path / "src")
    (tmp_path / "src" / "bad.yaml").write_text("key: [unclosed\n", encoding="utf-8")
    path = tmp_path / "src" / "drop.yaml"
    path.write_text(manifest, encoding="utf-8")
    code, _, err = run(["ingest-files", str(path)], capsys)
    assert code != 0 and message in err and err.strip().count("\n") == 0 and "Traceback" not in err
