"""event blocks: an encrypted columnar copy of events for analytics reads

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 03:00:00

On SQLite, triggers delete the block covering an event's rowid whenever that
event is inserted into an existing range, changed (a merge re-points it) or
deleted (erasure, retention): a block can never outlive the rows it copies.
PostgreSQL reads events with one COPY and keeps no blocks.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COVERING = "DELETE FROM event_blocks WHERE lo <= {row} AND hi > {row};"
TRIGGERS = {
    "event_blocks_after_insert": (
        "AFTER INSERT ON events WHEN NEW.rowid < (SELECT max(hi) FROM event_blocks)",
        _COVERING.format(row="NEW.rowid"),
    ),
    "event_blocks_after_update": (
        "AFTER UPDATE ON events",
        _COVERING.format(row="OLD.rowid") + " " + _COVERING.format(row="NEW.rowid"),
    ),
    "event_blocks_after_delete": ("AFTER DELETE ON events", _COVERING.format(row="OLD.rowid")),
}


def upgrade() -> None:
    op.create_table(
        "event_blocks",
        sa.Column("lo", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("hi", sa.BigInteger(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("first_id", sa.String(length=40), nullable=False),
        sa.Column("last_id", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("core", sa.LargeBinary(), nullable=False),
        sa.Column("props", sa.LargeBinary(), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lo", name=op.f("pk_event_blocks")),
    )
    # The insert trigger asks max(hi) for every new event: an index makes that one seek.
    op.create_index("ix_event_blocks_hi", "event_blocks", ["hi"])
    if op.get_bind().dialect.name == "sqlite":
        for name, (when, body) in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_event_blocks_hi", table_name="event_blocks")
    op.drop_table("event_blocks")
