"""budgets, channels, alerts (deduplicated), deliveries (outbox), anomalies, forecasts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"], ["projects.id"], name=f"fk_{table}_project_id_projects", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column(
            "receives_anomalies", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column("broken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("broken_reason", sa.Text(), nullable=True),
        _created_at(),
        sa.CheckConstraint("kind in ('slack', 'webhook')", name="kind"),
        _project_fk("channels"),
        sa.PrimaryKeyConstraint("id", name="pk_channels"),
        sa.UniqueConstraint("project_id", "name", name="uq_channels_project_id"),
    )
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("amount_usd", sa.Numeric(20, 6), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column(
            "scope", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "thresholds_pct",
            postgresql.ARRAY(sa.Integer()),
            server_default="{50,80,100}",
            nullable=False,
        ),
        sa.Column(
            "channel_ids", postgresql.ARRAY(sa.Integer()), server_default="{}", nullable=False
        ),
        sa.Column("forecast_alerts", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("renotify_hours", sa.Integer(), nullable=True),
        _created_at(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("period in ('day', 'week', 'month')", name="period"),
        sa.CheckConstraint("amount_usd > 0", name="amount_positive"),
        _project_fk("budgets"),
        sa.PrimaryKeyConstraint("id", name="pk_budgets"),
    )
    op.create_index("ix_budgets_project_id", "budgets", ["project_id"])
    op.create_table(
        "anomalies",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("dimension", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("start_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        *[
            sa.Column(name, sa.Double(), nullable=False)
            for name in ("observed", "expected", "lower", "upper", "score", "impact")
        ],
        sa.Column("explanation", postgresql.JSONB(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("metric in ('spend', 'calls')", name="metric"),
        _project_fk("anomalies"),
        sa.PrimaryKeyConstraint("id", name="pk_anomalies"),
        sa.UniqueConstraint(
            "project_id",
            "metric",
            "dimension",
            "value",
            "start_hour",
            name="uq_anomalies_project_id",
        ),
    )
    op.create_index("ix_anomalies_project_detected", "anomalies", ["project_id", "detected_at"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=True),
        sa.Column("anomaly_id", sa.BigInteger(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("threshold_pct", sa.Integer(), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notifications", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "rule in ('budget_threshold', 'budget_forecast', 'anomaly', "
            "'p99_request_cost_regression')",
            name="rule",
        ),
        sa.CheckConstraint("status in ('firing', 'resolved')", name="status"),
        _project_fk("alerts"),
        sa.ForeignKeyConstraint(
            ["budget_id"], ["budgets.id"], name="fk_alerts_budget_id_budgets", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["anomaly_id"],
            ["anomalies.id"],
            name="fk_alerts_anomaly_id_anomalies",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("project_id", "dedupe_key", name="uq_alerts_project_id"),
    )
    op.create_index("ix_alerts_project_created", "alerts", ["project_id", "created_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempting_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("resends", sa.Integer(), server_default="0", nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("event in ('fire', 'renotify', 'resolve')", name="event"),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name="fk_deliveries_alert_id_alerts", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name="fk_deliveries_channel_id_channels",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("alert_id", "channel_id", "seq", name="uq_deliveries_alert_id"),
    )
    op.create_index(
        "ix_deliveries_pending",
        "deliveries",
        ["channel_id", "id"],
        postgresql_where=sa.text("delivered_at is null"),
    )
    op.create_table(
        "forecasts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent_usd", sa.Numeric(24, 10), nullable=False),
        sa.Column("projected_usd", sa.Numeric(24, 6), nullable=False),
        sa.Column("lower_80_usd", sa.Numeric(24, 6), nullable=False),
        sa.Column("upper_80_usd", sa.Numeric(24, 6), nullable=True),
        sa.Column("lower_95_usd", sa.Numeric(24, 6), nullable=False),
        sa.Column("upper_95_usd", sa.Numeric(24, 6), nullable=True),
        sa.Column("probability_over_budget", sa.Double(), nullable=True),
        sa.Column("exhaustion_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("history_days", sa.Integer(), nullable=False),
        _project_fk("forecasts"),
        sa.ForeignKeyConstraint(
            ["budget_id"], ["budgets.id"], name="fk_forecasts_budget_id_budgets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_forecasts"),
        sa.UniqueConstraint("budget_id", "period_start", name="uq_forecasts_budget_id"),
    )


def downgrade() -> None:
    op.drop_table("forecasts")
    op.drop_index("ix_deliveries_pending", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_alerts_project_created", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_anomalies_project_detected", table_name="anomalies")
    op.drop_table("anomalies")
    op.drop_index("ix_budgets_project_id", table_name="budgets")
    op.drop_table("budgets")
    op.drop_table("channels")
