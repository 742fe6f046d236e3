"""golden cache triggers: invalidate the cached golden frame when records, links or profiles change

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 09:00:00

The golden frame cache (``analytic_cache`` row ``golden_profiles``, see
``cdp/access/_profile_frame.py``) is derived from ``records``, ``record_links``
and ``profiles``. On SQLite a trigger on each marks it stale in the same
statement that changes one of them: its body emptied and ``row_count`` set to
-1, its row and data key kept, so the rebuilt cache is under the same key (an
erasure shreds that key, and with it every earlier copy in a backup). Only
``profiles``' ``id`` and ``status`` matter to the frame (matching touches
``updated_at`` on every run). PostgreSQL keeps no golden cache.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_WHEN = "WHEN EXISTS (SELECT 1 FROM analytic_cache WHERE name = 'golden_profiles' AND row_count >= 0)"
_BODY = "UPDATE analytic_cache SET body = x'', row_count = -1 WHERE name = 'golden_profiles';"
_EVENTS = {
    "records": ("INSERT", "UPDATE", "DELETE"),
    "record_links": ("INSERT", "UPDATE", "DELETE"),
    "profiles": ("INSERT", "UPDATE OF id, status", "DELETE"),
}
TRIGGERS = {
    f"golden_cache_{table}_{event.split()[0].lower()}": f"AFTER {event} ON {table} {_WHEN}"
    for table, events in _EVENTS.items()
    for event in events
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, when in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {_BODY} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
