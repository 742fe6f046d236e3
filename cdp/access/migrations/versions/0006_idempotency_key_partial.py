"""records: an idempotency key only for records with their own message id

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 11:00:00

Why: every record stored a random 64-hex ``idempotency_key`` in a unique
index, also records whose key was only a hash of their (source, stream,
source record id), which the unique ``uq_records_source_stream_source_record_id``
already guards. The ingest now stores a key only for a record whose message id
is not its record id (NULL otherwise) and looks the others up by that triple;
the key's unique index becomes partial (``WHERE idempotency_key IS NOT NULL``),
so those records write no entry into it (about one random index insert per
record of the ingest hot path). Keys already stored stay as they are.

SQLite cannot drop a table's UNIQUE constraint or NOT NULL in place: the
table is rebuilt (batch mode). ``cdp.access.database.upgrade`` runs migrations
with foreign keys off on SQLite, as SQLite's documented rebuild procedure
requires (with them on, dropping the old table would cascade-delete the blind
indexes, events and links of every record), and checks them before committing.
The triggers on ``records`` (migration 0005) are dropped with the old table and
created again from their stored text.

Downgrade fills the NULL keys with the key a message-less record had
(sha256 of source, stream and source record id), which is what the older code
computes for such records.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NOT_NULL = sa.text("idempotency_key IS NOT NULL")


def _triggers() -> list[str]:
    """The CREATE TRIGGER statements of the triggers on ``records`` (SQLite), to re-create after a rebuild."""
    rows = op.get_bind().exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'records' ORDER BY name"
    )
    return [str(row[0]) for row in rows]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        triggers = _triggers()
        with op.batch_alter_table("records", recreate="always") as batch:
            batch.drop_constraint("uq_records_idempotency_key", type_="unique")
            batch.alter_column("idempotency_key", existing_type=sa.String(length=64), nullable=True)
        for sql in triggers:
            op.execute(sql)
    else:
        op.drop_constraint("uq_records_idempotency_key", "records", type_="unique")
        op.alter_column("records", "idempotency_key", existing_type=sa.String(length=64), nullable=True)
    op.create_index(
        "uq_records_idempotency_key",
        "records",
        ["idempotency_key"],
        unique=True,
        sqlite_where=_NOT_NULL,
        postgresql_where=_NOT_NULL,
    )


def downgrade() -> None:
    bind = op.get_bind()
    missing = bind.execute(
        sa.text("SELECT id, source, stream, source_record_id FROM records WHERE idempotency_key IS NULL")
    ).all()
    fill = sa.text("UPDATE records SET idempotency_key = :key WHERE id = :id")
    for record_id, source, stream, source_record_id in missing:
        key = hashlib.sha256(f"{source}\x1f{stream}\x1f{source_record_id}".encode()).hexdigest()
        bind.execute(fill, {"key": key, "id": record_id})
    op.drop_index("uq_records_idempotency_key", table_name="records")
    if bind.dialect.name == "sqlite":
        triggers = _triggers()
        with op.batch_alter_table("records", recreate="always") as batch:
            batch.alter_column("idempotency_key", existing_type=sa.String(length=64), nullable=False)
            batch.create_unique_constraint("uq_records_idempotency_key", ["idempotency_key"])
        for sql in triggers:
            op.execute(sql)
    else:
        op.alter_column("records", "idempotency_key", existing_type=sa.String(length=64), nullable=False)
        op.create_unique_constraint("uq_records_idempotency_key", "records", ["idempotency_key"])
