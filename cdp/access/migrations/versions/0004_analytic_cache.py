"""analytic cache: encrypted caches of values derived for analytics (birth years)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytic_cache",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analytic_cache")),
    )


def downgrade() -> None:
    op.drop_table("analytic_cache")
