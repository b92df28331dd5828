"""anomalies: per-request percentile metrics (p50/p99 of request cost and tokens)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "metric in ('spend', 'calls')"
_AFTER = (
    "metric in ('spend', 'calls', 'request_cost_p50', 'request_cost_p99', "
    "'request_tokens_p50', 'request_tokens_p99')"
)


def upgrade() -> None:
    # "metric" becomes ck_anomalies_metric through the naming convention (as in 0004).
    op.drop_constraint("metric", "anomalies", type_="check")
    op.create_check_constraint("metric", "anomalies", _AFTER)


def downgrade() -> None:
    op.execute("delete from anomalies where metric not in ('spend', 'calls')")
    op.drop_constraint("metric", "anomalies", type_="check")
    op.create_check_constraint("metric", "anomalies", _BEFORE)
