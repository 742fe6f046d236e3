"""CLI commands for compliance officers: data-subject requests, consent, retention, processing report."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cdp._exceptions import InputError
from cdp.access import AccessContext
from cdp.cli._runtime import console, human_context, settings, store, table

dsr_app = typer.Typer(
    help="Data-subject requests (GDPR/CCPA): access, erasure, rectification, restriction, objection.",
    no_args_is_help=True,
)
consent_app = typer.Typer(help="The consent ledger.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention periods from policies/fields.yaml.", no_args_is_help=True)
report_app = typer.Typer(help="Compliance reports.", no_args_is_help=True)

Identifier = Annotated[str, typer.Argument(help="email, phone or source:record id the person gave")]
Regime = Annotated[str, typer.Option(help="GDPR or CCPA (sets the legal deadline)")]
Role = Annotated[str | None, typer.Option("--role", help="your role (default compliance_officer)")]


def _ctx(role: str | None) -> AccessContext:
    return human_context(role or "compliance_officer", "dsr")


def _run(kind: str, identifier: str, regime: str, role: str | None, **options: object) -> None:
    from cdp.consent.dsr import DataSubjectRequests

    cfg = settings()
    with store(cfg) as opened:
        outcome = DataSubjectRequests(opened, cfg).run(
            _ctx(role), kind=kind, identifier=identifier, regime=regime, **options
        )
    rows: list[list[object]] = [
        ["request", outcome.request_id],
        ["status", outcome.status],
        ["profile", outcome.profile_id],
    ]
    rows += [[k, v] for k, v in outcome.result.items()]
    rows += [["file", str(f)] for f in outcome.files]
    console.print(table(f"Data-subject request: {kind}", ["what", "value"], rows))


@dsr_app.command("access")
def dsr_access(identifier: Identifier, regime: Regime = "GDPR", role: Role = None) -> None:
    """Export everything held on a person (JSON + human-readable summary)."""
    _run("access", identifier, regime, role)


@dsr_app.command("erase")
def dsr_erase(identifier: Identifier, regime: Regime = "GDPR", role: Role = None) -> None:
    """Erase a person: crypto-shred keys, delete records, unsegment, suppress re-ingestion."""
    _run("erasure", identifier, regime, role)


@dsr_app.command("rectify")
def dsr_rectify(
    identifier: Identifier,
    corrections: Annotated[list[str], typer.Argument(help="field=value corrections, e.g. family_name=Smith")],
    regime: Regime = "GDPR",
    role: Role = None,
) -> None:
    """Correct fields; the correction wins over source values."""
    parsed: dict[str, str] = {}
    for item in corrections:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"correction {item!r} must look like field=value")
        parsed[name.strip()] = value.strip()
    _run("rectification", identifier, regime, role, corrections=parsed)


@dsr_app.command("restrict")
def dsr_restrict(identifier: Identifier, regime: Regime = "GDPR", role: Role = None) -> None:
    """Keep the person's data but stop processing it."""
    _run("restriction", identifier, regime, role)


@dsr_app.command("object")
def dsr_object(
    identifier: Identifier,
    purpose: Annotated[str, typer.Option(help="the consent purpose objected to, e.g. marketing_email")],
    regime: Regime = "GDPR",
    role: Role = None,
) -> None:
    """Record an objection to one purpose (takes effect on the next read, segment or export)."""
    _run("objection", identifier, regime, role, purpose=purpose)


@dsr_app.command("replay-erasures")
def dsr_replay_erasures(role: Role = None) -> None:
    """After restoring the database from a backup: erase again everyone in the erasure ledger."""
    cfg = settings()
    with store(cfg) as opened:
        outcome = opened.replay_erasures(_ctx(role))
    console.print(table("Erasure ledger replayed", ["what", "count"], sorted(outcome.items())))


@dsr_app.command("list")
def dsr_list(role: Role = None) -> None:
    """All requests with their state and deadline."""
    cfg = settings()
    with store(cfg) as opened:
        rows = opened.requests(_ctx(role))
    _requests_table("Data-subject requests", rows)


@dsr_app.command("overdue")
def dsr_overdue(role: Role = None) -> None:
    """Requests past their legal deadline that are not done."""
    from cdp.consent.dsr import DataSubjectRequests

    cfg = settings()
    with store(cfg) as opened:
        rows = DataSubjectRequests(opened, cfg).overdue(_ctx(role))
    _requests_table("Overdue data-subject requests", rows)


def _requests_table(title: str, rows: list[dict[str, object]]) -> None:
    columns = ["id", "kind", "status", "regime", "profile_id", "received_at", "due_at"]
    console.print(table(f"{title} ({len(rows)})", columns, [[r[c] for c in columns] for r in rows]))


@consent_app.command("set")
def consent_set(
    profile: Annotated[str, typer.Argument(help="profile id")],
    purpose: Annotated[str, typer.Argument(help="consent purpose, e.g. marketing_email")],
    status: Annotated[str, typer.Argument(help="granted, denied or withdrawn")],
    basis: Annotated[str, typer.Option(help="consent, contract, legitimate_interest, legal_obligation")] = "consent",
    notice_version: Annotated[str | None, typer.Option(help="privacy notice version shown")] = None,
    role: Role = None,
) -> None:
    """Append a consent decision to the ledger."""
    cfg = settings()
    with store(cfg) as opened:
        opened.record_consent(
            human_context(role or "compliance_officer", "compliance"),
            profile,
            purpose=purpose,
            status=status,
            basis=basis,
            source="cli",
            notice_version=notice_version,
        )
    console.print(f"recorded: {profile} {purpose} = {status}")


@consent_app.command("show")
def consent_show(profile: Annotated[str, typer.Argument(help="profile id")], role: Role = None) -> None:
    """Current consent state per purpose, derived from the ledger."""
    cfg = settings()
    with store(cfg) as opened:
        state = opened.consent_state(human_context(role or "compliance_officer", "compliance"), profile)
    console.print(table(f"Consent of {profile}", ["purpose", "status"], sorted(state.items())))


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report what would be deleted, delete nothing")] = False,
    role: Role = None,
) -> None:
    """Delete what is older than its retention period (audited)."""
    cfg = settings()
    with store(cfg) as opened:
        report = opened.apply_retention(human_context(role or "compliance_officer", "compliance"), dry_run=dry_run)
    columns = ["rule", "days", "cutoff", "affected", "deleted"]
    console.print(
        table("Retention" + (" (dry run)" if dry_run else ""), columns, [[r[c] for c in columns] for r in report])
    )


@report_app.command("processing")
def report_processing(
    output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    role: Role = None,
) -> None:
    """Records of processing (GDPR Art. 30) from the policies and the live data."""
    from cdp.consent.report import processing_record

    cfg = settings()
    with store(cfg) as opened:
        record = processing_record(
            opened, opened.policy.policy, human_context(role or "compliance_officer", "compliance")
        )
    if output == "json":
        console.print_json(json.dumps(record, default=str))
        return
    console.print(
        table(
            "Personal data held",
            ["class", "fields", "sources"],
            [
                [c, ", ".join(v["fields"]), ", ".join(v["sources"])]
                for c, v in record["categories_of_personal_data"].items()
            ],
        )
    )
    console.print(
        table(
            "Purposes",
            ["purpose", "lawful basis", "opt-in in", "roles"],
            [
                [p, v["lawful_basis"], ", ".join(v["opt_in_jurisdictions"]), ", ".join(v["roles"])]
                for p, v in record["purposes"].items()
            ],
        )
    )
    console.print(table("Recipients", ["destination (segment)", "people sent"], sorted(record["recipients"].items())))
    console.print(table("Retention", ["rule", "days"], sorted(record["retention_days"].items())))


def register(app: typer.Typer) -> None:
    app.add_typer(dsr_app, name="dsr")
    app.add_typer(consent_app, name="consent")
    app.add_typer(retention_app, name="retention")
    app.add_typer(report_app, name="report")
