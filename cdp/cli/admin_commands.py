"""CLI commands for operators and compliance officers: db, audit, policy, quarantine, connectors, keys, serve."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cdp._exceptions import IntegrityViolation
from cdp.access import database
from cdp.cli._runtime import console, human_context, settings, store, table

db_app = typer.Typer(help="The system of record's schema.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
policy_app = typer.Typer(help="Access policies.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Records rejected at ingestion.", no_args_is_help=True)
connectors_app = typer.Typer(help="Installed connectors.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)

RoleOption = Annotated[str | None, typer.Option("--role", help="your role (or CDP_ROLE)")]
PurposeOption = Annotated[str | None, typer.Option("--purpose", help="why you are asking (or CDP_PURPOSE)")]


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Create or migrate the schema (the only way the schema is created)."""
    cfg = settings()
    engine = database.create_db_engine(cfg)
    try:
        now_at = database.upgrade(engine, revision)
    finally:
        engine.dispose()
    console.print(f"database {database.describe_url(cfg.database_url)} is at revision {now_at}")


@audit_app.command("verify")
def audit_verify(role: RoleOption = None, purpose: PurposeOption = None) -> None:
    """Check the hash chain and the signed checkpoints; name the first bad record."""
    cfg = settings()
    with store(cfg) as opened:
        result = opened.verify_audit(human_context(role or "compliance_officer", purpose or "compliance"))
    if not result.ok:
        raise IntegrityViolation(f"audit log verification FAILED at record {result.first_bad_seq}: {result.reason}")
    console.print(
        f"audit log OK: {result.checked:,} records chained, {result.checkpoints_checked} signed checkpoint(s) verified"
    )


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the head of the audit chain now."""
    cfg = settings()
    with store(cfg) as opened:
        seq = opened.checkpoint_now()
    console.print(f"checkpoint signed at record {seq}" if seq else "audit log is empty")


@audit_app.command("search")
def audit_search(
    actor: Annotated[str | None, typer.Option(help="only this actor")] = None,
    subject: Annotated[str | None, typer.Option(help="only accesses touching this profile or record id")] = None,
    purpose_filter: Annotated[str | None, typer.Option("--for-purpose", help="only accesses for this purpose")] = None,
    decision: Annotated[str | None, typer.Option(help="allow or deny")] = None,
    since: Annotated[datetime | None, typer.Option(help="from this time (ISO 8601)")] = None,
    until: Annotated[datetime | None, typer.Option(help="until this time (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 50,
    output: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Search who accessed what, when, why, and what the policy decided."""
    cfg = settings()
    with store(cfg) as opened:
        rows = opened.search_audit(
            human_context(role or "compliance_officer", purpose or "compliance"),
            actor=actor,
            subject=subject,
            purpose=purpose_filter,
            decision=decision,
            since=since,
            until=until,
            limit=limit,
        )
    columns = ["seq", "at", "actor", "role", "purpose", "action", "resource", "subject_count", "decision", "detail"]
    if output == "json":
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow([*columns, "fields", "subjects", "rule", "hash"])
        for row in rows:
            writer.writerow(
                [row[c] for c in columns]
                + [";".join(row["fields"]), ";".join(row["subjects"]), row["rule"], row["hash"]]
            )
    else:
        console.print(
            table(f"Audit log ({len(rows)} records, newest first)", columns, [[r[c] for c in columns] for r in rows])
        )


@policy_app.command("explain")
def policy_explain(
    role: Annotated[str, typer.Option(help="the role asking")],
    purpose: Annotated[str, typer.Option(help="the declared purpose")],
    field: Annotated[str, typer.Option(help="the field")],
    action: Annotated[str, typer.Option(help="read, write, export, erase, manage")] = "read",
) -> None:
    """Say which rule decides whether a role may see a field for a purpose."""
    from cdp.policy import PolicyEngine, load_policy

    cfg = settings()
    console.print(
        PolicyEngine(load_policy(cfg.policies_dir)).explain(role=role, purpose=purpose, field=field, action=action)
    )


@policy_app.command("check")
def policy_check() -> None:
    """Validate policies/*.yaml."""
    from cdp.policy import load_policy

    cfg = settings()
    policy = load_policy(cfg.policies_dir)
    console.print(
        f"policies OK: {len(policy.roles)} roles, {len(policy.purposes)} purposes, "
        f"{len(policy.field_classes)} fields classified"
    )


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    status: Annotated[str, typer.Option(help="open, replayed or all")] = "open",
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """List quarantined records with their position and reason."""
    cfg = settings()
    with store(cfg) as opened:
        rows = opened.quarantine_entries(
            human_context(role or "data_engineer", purpose or "operations"),
            source=source,
            status=None if status == "all" else status,
        )
    columns = ["id", "source", "position", "field", "reason", "status"]
    listed = [[_short_reason(r) if c == "reason" else r[c] for c in columns] for r in rows]
    console.print(table(f"Quarantine ({len(rows)})", columns, listed))
    if rows:
        console.print("`cdp quarantine show ID` prints an entry's full reason and its raw content.")


def _short_reason(entry: Mapping[str, Any]) -> str:
    """The reason without its "record …, field '…': " prefix: the position and field columns say where."""
    reason = str(entry.get("reason") or "")
    head, separator, rest = reason.partition(": ")
    return rest if separator and head and _WHERE.fullmatch(head) else reason


_WHERE = re.compile(r"(?:record \S+)?(?:, )?(?:field '[^']*')?")  # how RecordRejected names the place


@quarantine_app.command("show")
def quarantine_show(
    entry: Annotated[str, typer.Argument(help="quarantine entry id")],
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Show one quarantined record, including its raw content (needs a role that may read it)."""
    cfg = settings()
    with store(cfg) as opened:
        row, raw = opened.quarantine_payload(human_context(role or "data_engineer", purpose or "operations"), entry)
    for key in ("id", "source", "stream", "position", "field", "reason", "status", "received_at"):
        console.print(f"[bold]{key}[/bold]: {row[key]}")
    console.print("[bold]raw[/bold]:")
    console.print(raw, markup=False)


@quarantine_app.command("replay")
def quarantine_replay(
    source: Annotated[str, typer.Argument(help="the source whose open entries to replay")],
    connector: Annotated[str, typer.Option(help="connector to parse them with (default: the source name)")] = "",
    config: Annotated[Path | None, typer.Option(help="YAML connector config, e.g. a fixed column mapping")] = None,
) -> None:
    """Run quarantined records through the connector again (after a mapping fix)."""
    from cdp.connectors.replay import replay

    cfg = settings()
    with store(cfg) as opened:
        result = replay(opened, cfg, source, connector or source, config)
    console.print(
        table(
            "Replay",
            ["source", "tried", "accepted", "still rejected"],
            [[source, result.tried, result.accepted, result.rejected]],
        )
    )


@connectors_app.command("list")
def connectors_list() -> None:
    """List installed connectors (built-in and plugins) with their streams."""
    from cdp.connectors.runner import available_connectors

    cfg = settings()
    rows = []
    for name, cls in sorted(available_connectors(cfg).items()):
        streams = ", ".join(f"{s.name} (key {'+'.join(s.primary_key)}, cursor {s.cursor_field})" for s in cls.streams)
        rows.append([name, cls.__module__.split(".")[0], cls.description, streams])
    console.print(table("Connectors", ["name", "package", "description", "streams"], rows))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new key-encryption key and re-wrap every data key under it (no plaintext on disk)."""
    from cdp.access import AccessContext

    cfg = settings()
    with store(cfg) as opened:
        count, kek = opened.rotate_keys(AccessContext("cli:keys", "compliance_officer", "operations"))
    console.print(f"re-wrapped {count:,} data keys under key-encryption key {kek}")


def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
) -> None:
    """Serve the HTTP API and the Segment-compatible collection endpoint."""
    import uvicorn

    from cdp.api import create_app

    cfg = settings()
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="warning")
