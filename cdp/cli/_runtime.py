"""What every CLI command needs: settings, the store, a console, an access context."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

from cdp._exceptions import PurposeRequired
from cdp._logging import configure_logging
from cdp.access import AccessContext, CustomerStore, open_store
from cdp.settings import Settings, load_settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def settings() -> Settings:
    loaded = load_settings()
    configure_logging(environment=loaded.environment, level=loaded.log_level)
    return loaded


@contextmanager
def store(config: Settings, *, migrate: bool = False) -> Iterator[CustomerStore]:
    opened = open_store(config, migrate=migrate)
    try:
        yield opened
    finally:
        opened.close()


def human_context(role: str | None, purpose: str | None, actor: str | None = None) -> AccessContext:
    """The operator's context: role and purpose must be declared (flags or CDP_ROLE / CDP_PURPOSE)."""
    chosen_role = role or os.environ.get("CDP_ROLE", "")
    chosen_purpose = purpose or os.environ.get("CDP_PURPOSE", "")
    if not chosen_role:
        raise PurposeRequired("declare a role with --role or CDP_ROLE (for example compliance_officer)")
    if not chosen_purpose:
        raise PurposeRequired("declare a purpose with --purpose or CDP_PURPOSE (for example compliance)")
    who = actor or os.environ.get("CDP_ACTOR") or f"user:{getpass.getuser()}"
    return AccessContext(who, chosen_role, chosen_purpose)


def table(title: str, columns: list[str], rows: Sequence[Sequence[object]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    return out
