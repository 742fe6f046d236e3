"""``cdp identity``: evaluate, explain and correct identity resolution.

``evaluate`` compares the store's profiles with a labels file (counts and
ratios only); ``match-new`` gives records that arrived since the last
resolution their profiles without a batch run (:mod:`cdp.identity.realtime`);
``explain`` shows why a profile holds its records (per compared
field: level and match weight, never values); ``merge``, ``split`` and
``never`` store a person's decision, which later automatic runs obey. Manual
actions run as the operator (role ``data_engineer`` and purpose
``operations`` unless ``--role``/``--purpose`` or ``CDP_ROLE``/``CDP_PURPOSE``
say otherwise) and are audited.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cdp.access import AccessContext
from cdp.access.context import identity_context
from cdp.cli._runtime import console, human_context, settings, store, table
from cdp.identity.evaluate import evaluate_assignment, load_labels, scoped_assignment
from cdp.identity.manual import explain_profile, merge_profiles, never_link, split_record
from cdp.identity.realtime import match_new_records

identity_app = typer.Typer(help="Evaluate, explain and correct identity resolution.", no_args_is_help=True)

RoleOption = Annotated[str | None, typer.Option("--role", help="your role (default data_engineer)")]
PurposeOption = Annotated[str | None, typer.Option("--purpose", help="your purpose (default operations)")]
ReasonOption = Annotated[str, typer.Option("--reason", help="why (kept with the rule)")]


def _operator(role: str | None, purpose: str | None) -> AccessContext:
    return human_context(
        role or os.environ.get("CDP_ROLE") or "data_engineer",
        purpose or os.environ.get("CDP_PURPOSE") or "operations",
    )


@identity_app.command("evaluate")
def evaluate_command(
    labels: Annotated[Path, typer.Option("--labels", help="CSV with source,record_id,entity_id")],
    scope: Annotated[
        str, typer.Option(help="identity: records carrying an identifier; resolved: those plus linked events")
    ] = "identity",
) -> None:
    """Pairwise and cluster-level accuracy of the current profiles against ground truth."""
    if scope not in ("identity", "resolved"):
        raise typer.BadParameter("scope must be identity or resolved")
    cfg = settings()
    truth = load_labels(labels)
    with store(cfg) as opened:
        records = opened.identity_features(identity_context(), include_identifiers=False)
    metrics = evaluate_assignment(scoped_assignment(records, "identity" if scope == "identity" else "resolved"), truth)
    console.print(
        table(
            f"Identity resolution against {labels.name} (scope: {scope})",
            ["measure", "value"],
            [list(row) for row in metrics.as_rows()],
        )
    )


@identity_app.command("match-new")
def match_new_command() -> None:
    """Match records that have no profile yet against the existing profiles (no batch re-run)."""
    cfg = settings()
    with store(cfg) as opened:
        report = match_new_records(opened, cfg)
    if report.skipped:
        console.print(f"[yellow]nothing matched: {report.skipped}[/yellow]")
        raise typer.Exit(1)
    latencies = sorted(report.latencies_ms)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0
    console.print(
        table(
            "Incremental identity matching",
            ["measure", "value"],
            [
                ["records examined", f"{report.examined:,}"],
                ["joined an existing profile", f"{report.joined_existing:,}"],
                ["new profiles", f"{report.new_profiles:,}"],
                ["anonymous records that followed an id", f"{report.followed_identifiers:,}"],
                ["left anonymous", f"{report.left_anonymous:,}"],
                ["kept out by the guards", f"{report.refused:,}"],
                ["candidate records read", f"{report.candidates_read:,}"],
                ["decision time p95 (ms)", f"{p95:.2f}"],
                ["seconds", f"{report.seconds:.2f}"],
            ],
        )
    )


@identity_app.command("explain")
def explain_command(
    profile: Annotated[str, typer.Argument(help="profile id")],
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Why a profile holds its records: link reasons, and each scored pair field by field."""
    cfg = settings()
    with store(cfg) as opened:
        explanation = explain_profile(opened, _operator(role, purpose), profile)
    console.print(
        table(
            f"Profile {explanation.profile_id}: {len(explanation.records)} record(s)",
            ["record", "source", "kind", "linked because"],
            [[r["record_id"], r["source"], r["kind"], r["reason"]] for r in explanation.records],
        )
    )
    if not explanation.evidence:
        console.print("no probabilistic evidence: every record joined through a verified identifier or a rule")
    for item in explanation.evidence:
        fields = item["fields"]
        console.print(
            table(
                f"{item['record_a']} ~ {item['record_b']}: {item['decision']}, "
                f"probability {item['probability']:.4f}, match weight {item['match_weight']:.2f}",
                ["field", "comparison level", "match weight"],
                [[name, f["level"], f"{float(f['weight']):+.2f}"] for name, f in fields.items()]
                + [["total", "", f"{item['match_weight']:+.2f} (probability {item['probability']:.4f})"]],
            )
        )


@identity_app.command("merge")
def merge_command(
    profile_a: Annotated[str, typer.Argument(help="a profile id")],
    profile_b: Annotated[str, typer.Argument(help="the profile id to merge with it")],
    reason: ReasonOption = "",
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Merge two profiles (kept by later automatic runs)."""
    cfg = settings()
    with store(cfg) as opened:
        survivor, stats = merge_profiles(opened, _operator(role, purpose), profile_a, profile_b, reason=reason)
    console.print(f"merged into {survivor} ({stats.relinked} record(s) relinked, {stats.retired} profile retired)")


@identity_app.command("split")
def split_command(
    record: Annotated[str, typer.Argument(help="record id to take out of its profile")],
    reason: ReasonOption = "",
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Split a record off into a profile of its own (kept by later automatic runs)."""
    cfg = settings()
    with store(cfg) as opened:
        stats = split_record(opened, _operator(role, purpose), record, reason=reason)
    console.print(f"record {record} split off ({stats.created} profile created)")


@identity_app.command("never")
def never_command(
    record_a: Annotated[str, typer.Argument(help="a record id")],
    record_b: Annotated[str, typer.Argument(help="a record id of a different person")],
    reason: ReasonOption = "",
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """Mark two records as different people: no automatic run will put them in one profile."""
    cfg = settings()
    with store(cfg) as opened:
        stats = never_link(opened, _operator(role, purpose), record_a, record_b, reason=reason)
    if stats is None:
        console.print("rule stored; the records are already in different profiles")
    else:
        console.print(f"rule stored; {record_b} moved out of the shared profile")


def register(app: typer.Typer) -> None:
    """Add the ``identity`` sub-app to the ``cdp`` command."""
    app.add_typer(identity_app, name="identity")
