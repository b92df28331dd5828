"""price_overrides: effective-dated project prices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "price_overrides",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("input_mtok", sa.Numeric(20, 10), nullable=True),
        sa.Column("output_mtok", sa.Numeric(20, 10), nullable=True),
        sa.Column("cache_read_mtok", sa.Numeric(20, 10), nullable=True),
        sa.Column("cache_write_mtok", sa.Numeric(20, 10), nullable=True),
        sa.Column("discount_pct", sa.Numeric(7, 4), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "discount_pct is not null or input_mtok is not null or output_mtok is not null "
            "or cache_read_mtok is not null or cache_write_mtok is not null",
            name="has_a_price",
        ),
        sa.CheckConstraint(
            "discount_pct is null or (discount_pct >= 0 and discount_pct <= 100)",
            name="discount_range",
        ),
        sa.CheckConstraint(
            "effective_to is null or effective_to > effective_from", name="effective_range"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_price_overrides_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_price_overrides"),
    )
    op.create_index(
        "ix_price_overrides_project_model", "price_overrides", ["project_id", "provider", "model"]
    )


def downgrade() -> None:
    op.drop_index("ix_price_overrides_project_model", table_name="price_overrides")
    op.drop_table("price_overrides")
