"""a partial index of the profiles that are not active

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 02:00:00

Why: every events read of a segment refresh asks, in its own transaction, which
profiles are not active (their events are left out). Without an index that is a
scan of the whole profiles table (about 0.1 s at a million profiles) before the
first event block can be handed over; with a partial index of just those
profiles' ids, the query reads the index alone. Partial, so that the many
queries for the active profiles (nearly every row) are not tempted to use it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_profiles_inactive",
        "profiles",
        ["id"],
        sqlite_where=sa.text("status != 'active'"),
        postgresql_where=sa.text("status != 'active'"),
    )


def downgrade() -> None:
    op.drop_index("ix_profiles_inactive", table_name="profiles")
