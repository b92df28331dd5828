"""rollups: a composite type for a request's earliest call, picked in one ordered aggregate

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ``(array_agg(row(...)::costline_first_call order by started_at, span_id))[1]`` sorts a
    # request's calls once for all of its attribution, instead of once per attribute.
    op.execute(
        "create type costline_first_call as (span_id bytea, feature text, customer text, "
        "environment text, user_id text, service_name text)"
    )


def downgrade() -> None:
    op.execute("drop type costline_first_call")
