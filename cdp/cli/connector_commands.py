"""CLI commands for connector authors: ``cdp connectors new NAME`` scaffolds a plugin package.

Kept apart from ``admin_commands`` (which lists what is installed) because
it writes source code, not data: it never opens the store. ``register``
attaches the commands to the existing ``connectors`` group of the root app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp.cli import admin_commands
from cdp.cli._runtime import console, settings


def connectors_new(
    name: Annotated[str, typer.Argument(help="connector name, e.g. loyalty_app")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="directory to create the package in (default: plugins/cdp-NAME)")
    ] = None,
) -> None:
    """Scaffold a connector plugin package that passes the conformance kit out of the box."""
    from cdp.connectors.runner import available_connectors
    from cdp.connectors.scaffold import PluginNames, scaffold

    names = PluginNames.from_name(name)
    target = scaffold(name, directory, taken=available_connectors(settings()).keys())
    console.print(f"created {names.distribution} (connector {names.connector}) in {target}")
    console.print(f"next: pip install -e {target} && cd {target} && python -m pytest -W error")


def register(app: typer.Typer) -> None:
    """Add ``new`` to the ``connectors`` group of ``app`` (idempotent)."""
    group = next(
        (info.typer_instance for info in app.registered_groups if info.name == "connectors" and info.typer_instance),
        None,
    )
    if group is None:
        group = admin_commands.connectors_app
        app.add_typer(group, name="connectors")
    if not any(command.name == "new" for command in group.registered_commands):
        group.command("new")(connectors_new)
