"""destination syncs: the audience each destination holds, and each sync

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 15:40:00

Why: segments are activated by incremental syncs (``cdp/activation``): each sync
sends a destination only the members who entered and those who left since the
last one. ``destination_members`` is what each destination holds per segment
(profile ids only, no identifier), ``destination_syncs`` one row per attempt
with its counts, its export record and, for a failed one, the error.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destination_members",
        sa.Column("destination", sa.String(length=100), nullable=False),
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("destination", "segment", "profile_id", name=op.f("pk_destination_members")),
    )
    op.create_table(
        "destination_syncs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("destination", sa.String(length=100), nullable=False),
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=50), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("excluded", sa.Integer(), nullable=False),
        sa.Column("export_id", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destination_syncs")),
    )
    op.create_index(
        "ix_destination_syncs_destination_segment", "destination_syncs", ["destination", "segment"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_destination_syncs_destination_segment", table_name="destination_syncs")
    op.drop_table("destination_syncs")
    op.drop_table("destination_members")
