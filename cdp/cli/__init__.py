"""The ``cdp`` command line.

Every command maps errors in one place (``_errors.fail``): a ``CDPError``
becomes one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from cdp._exceptions import CDPError
from cdp.cli import (
    admin_commands,
    compliance_commands,
    connector_commands,
    destination_commands,
    identity_commands,
    pipeline_commands,
    segment_commands,
)
from cdp.cli._errors import fail

app = typer.Typer(
    name="cdp",
    help="cdp: a privacy-first customer data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("demo")(pipeline_commands.demo_command)
app.command("ingest")(pipeline_commands.ingest_command)
app.command("ingest-files")(pipeline_commands.ingest_files_command)
app.command("resolve")(pipeline_commands.resolve_command)
app.command("export")(pipeline_commands.export_command)
app.command("serve")(admin_commands.serve_command)
app.add_typer(admin_commands.db_app, name="db")
app.add_typer(admin_commands.audit_app, name="audit")
app.add_typer(admin_commands.policy_app, name="policy")
app.add_typer(admin_commands.quarantine_app, name="quarantine")
app.add_typer(admin_commands.connectors_app, name="connectors")
app.add_typer(admin_commands.keys_app, name="keys")
compliance_commands.register(app)
connector_commands.register(app)
destination_commands.register(app)
identity_commands.register(app)
segment_commands.register(app)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=True)
    except CDPError as error:
        fail(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
