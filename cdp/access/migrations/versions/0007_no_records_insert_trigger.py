"""golden cache: no trigger on inserting a record (a new record has no links yet)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 11:10:00

Why: migration 0005's ``golden_dirty_records_insert`` ran for every inserted
record (its WHEN clause a look-up in ``analytic_cache`` per row) to add the
profiles linked to the new record. A record being inserted has no links:
``record_links.record_id`` references ``records.id`` and SQLite enforces it
(``PRAGMA foreign_keys=ON`` on every connection, not deferred), so no link can
name a record before it exists, and a deleted record's links go with it (ON
DELETE CASCADE). The trigger could never add a profile; a record changes a
cached golden row only once linked, which ``golden_dirty_links_insert`` sees.
It cost about 0.25 CPU s per 100,000 ingested records (docs/benchmarks.md,
Ingestion, round 6). The update and delete triggers stay.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_CREATE = (
    "CREATE TRIGGER golden_dirty_records_insert AFTER INSERT ON records"
    " WHEN EXISTS (SELECT 1 FROM analytic_cache WHERE name = 'golden_profiles')"
    " BEGIN INSERT OR IGNORE INTO golden_dirty (profile_id)"
    " SELECT profile_id FROM record_links WHERE record_id = NEW.id AND unlinked_at IS NULL; END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS golden_dirty_records_insert")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_CREATE)
