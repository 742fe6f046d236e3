"""golden cache: the profiles whose cached golden row changed, kept by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 09:00:00

The golden frame cache (``analytic_cache`` row ``golden_profiles``, see
``cdp/access/_profile_frame.py``) is derived from ``records``, ``record_links``
and ``profiles``. On SQLite, while the cache exists, a trigger on each adds
the profiles a change touches to ``golden_dirty`` in the statement that makes
the change: a record's linked profiles, a link's old and new profile, a
profile whose status changed (matching touches ``updated_at`` on every run,
which the frame does not read). The next read recomputes those profiles
only. PostgreSQL keeps no golden cache (the table stays empty).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_WHEN = "WHEN EXISTS (SELECT 1 FROM analytic_cache WHERE name = 'golden_profiles')"
_ADD = "INSERT OR IGNORE INTO golden_dirty (profile_id) "
_LINKED = _ADD + "SELECT profile_id FROM record_links WHERE record_id = {row}.id AND unlinked_at IS NULL;"
TRIGGERS = {
    "golden_dirty_records_insert": ("AFTER INSERT ON records", _LINKED.format(row="NEW")),
    "golden_dirty_records_update": (
        "AFTER UPDATE ON records",
        _LINKED.format(row="OLD") + " " + _LINKED.format(row="NEW"),
    ),
    "golden_dirty_records_delete": ("AFTER DELETE ON records", _LINKED.format(row="OLD")),
    "golden_dirty_links_insert": ("AFTER INSERT ON record_links", _ADD + "VALUES (NEW.profile_id);"),
    "golden_dirty_links_update": (
        "AFTER UPDATE ON record_links",
        _ADD + "VALUES (OLD.profile_id); " + _ADD + "VALUES (NEW.profile_id);",
    ),
    "golden_dirty_links_delete": ("AFTER DELETE ON record_links", _ADD + "VALUES (OLD.profile_id);"),
    "golden_dirty_profiles_insert": ("AFTER INSERT ON profiles", _ADD + "VALUES (NEW.id);"),
    "golden_dirty_profiles_update": (
        "AFTER UPDATE OF id, status ON profiles",
        _ADD + "VALUES (OLD.id); " + _ADD + "VALUES (NEW.id);",
    ),
    "golden_dirty_profiles_delete": ("AFTER DELETE ON profiles", _ADD + "VALUES (OLD.id);"),
}


def upgrade() -> None:
    op.create_table(
        "golden_dirty",
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_golden_dirty")),
    )
    if op.get_bind().dialect.name == "sqlite":
        for name, (when, body) in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} {_WHEN} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("golden_dirty")
