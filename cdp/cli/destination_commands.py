"""CLI for activation: ``cdp destinations types|list|sync|history|deletions``.

Destinations are configured in a YAML file (``--config``, default ``destinations.yaml``
in the working directory)::

    destinations:
      crm:
        type: webhook
        url: https://crm.example.com/hooks/cdp
      meta_ads:
        type: ad_audience
        directory: ./audiences

A sync runs as the destination's service account (``destination:NAME``), for the
segment's declared purpose; history is read by the operator, who declares a role and a
purpose like every other command that reads customer data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from cdp.activation.builtin import WebhookDestination
from cdp.activation.sync import (
    deliver_deletions,
    destination_types,
    find_destination,
    load_destinations,
    sync_segment,
)
from cdp.cli._runtime import console, human_context, settings, store, table
from cdp.segments.service import load_segment_file

ConfigOption = Annotated[Path, typer.Option("--config", help="the destinations file")]
RoleOption = Annotated[str | None, typer.Option("--role", help="your role (or CDP_ROLE)")]
PurposeOption = Annotated[str | None, typer.Option("--purpose", help="why you are asking (or CDP_PURPOSE)")]
DEFAULT_CONFIG = Path("destinations.yaml")

destinations_app = typer.Typer(
    help="Destinations: deliver segments to downstream tools (incremental syncs).", no_args_is_help=True
)


@destinations_app.command("types")
def types_command() -> None:
    """Destination types installed (built-in and plugins), with their configuration keys."""
    found = destination_types(settings())
    rows = []
    for name, cls in sorted(found.items()):
        keys = ", ".join(
            f"{f.name}{'*' if f.required else ''}{' (secret)' if f.secret else ''}" for f in cls.config_fields
        )
        purposes = ", ".join(cls.purposes) if cls.purposes else "any"
        deletes = "yes" if cls.supports_deletion else "no"
        rows.append([name, cls.description, keys, purposes, deletes])
    columns = ["type", "description", "config (* required)", "purposes", "deletes"]
    console.print(table("Destination types", columns, rows))


@destinations_app.command("list")
def list_command(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """The destinations configured in the destinations file (validated)."""
    cfg = settings()
    configured = load_destinations(cfg, config)
    rows = []
    for name, destination in sorted(configured.items()):
        secret = (
            str(cfg.keys_dir / f"{destination.secret_name}.key") if isinstance(destination, WebhookDestination) else ""
        )
        rows.append([name, destination.name, destination.location(), secret])
    console.print(table(f"Destinations in {config}", ["name", "type", "delivers to", "signing secret file"], rows))


@destinations_app.command("sync")
def sync_command(
    segment_file: Annotated[Path, typer.Argument(help="the segment definition (its stored members are synced)")],
    to: Annotated[str, typer.Option("--to", help="the destination's name in the destinations file")],
    config: ConfigOption = DEFAULT_CONFIG,
    full: Annotated[bool, typer.Option("--full", help="send every current member again, not only the change")] = False,
) -> None:
    """Send a destination the members who entered and left the segment since its last sync."""
    cfg = settings()
    definition = load_segment_file(segment_file)
    destination = find_destination(load_destinations(cfg, config), to, config)
    with store(cfg) as opened, Progress(TextColumn("{task.description}"), BarColumn(), transient=True) as bar:
        task = bar.add_task(f"reading {definition.name}", total=None)
        report = sync_segment(
            opened,
            destination,
            definition.name,
            definition.purpose,
            full=full,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(
        table(
            f"Sync {report.sync_id}",
            ["segment", "destination", "members", "excluded by consent", "added", "removed", "now held", "batches"],
            [
                [
                    report.segment,
                    report.destination,
                    report.members,
                    report.excluded,
                    report.added,
                    report.removed,
                    report.delivered_to,
                    report.batches,
                ]
            ],
        )
    )


@destinations_app.command("history")
def history_command(
    destination: Annotated[str | None, typer.Option("--destination", help="only this destination")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    role: RoleOption = None,
    purpose: PurposeOption = None,
) -> None:
    """The latest syncs: when, what changed, and why a failed one failed."""
    ctx = human_context(role, purpose)
    with store(settings()) as opened:
        rows = opened.destination_syncs(ctx, destination=destination, limit=limit)
    console.print(
        table(
            "Destination syncs",
            ["started", "destination", "segment", "purpose", "status", "added", "removed", "excluded", "error"],
            [
                [
                    r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
                    r["destination"],
                    r["segment"],
                    r["purpose"],
                    r["status"],
                    r["added"],
                    r["removed"],
                    r["excluded"],
                    r["error"] or "",
                ]
                for r in rows
            ],
        )
    )


@destinations_app.command("deletions")
def deletions_command(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Tell destinations of the erasures queued for them (data-subject requests)."""
    cfg = settings()
    configured = load_destinations(cfg, config)
    with store(cfg) as opened:
        reports = deliver_deletions(opened, configured)
    rows = [[r.destination, r.sent, r.pending, r.error or ""] for r in reports]
    console.print(table("Erasures sent to destinations", ["destination", "sent", "still queued", "note"], rows))


def register(app: typer.Typer) -> None:
    """Add ``destinations`` to the ``cdp`` app."""
    app.add_typer(destinations_app, name="destinations")
