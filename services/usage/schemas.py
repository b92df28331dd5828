"""Query parameters and answers of the usage endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Dimension = Literal["provider", "model", "feature", "customer", "environment"]
Interval = Literal["hour", "day", "week", "month", "total"]
Interpolation = Literal["linear", "nearest"]
Metric = Literal["call_cost", "request_cost", "request_tokens", "calls_per_request", "latency"]

DIMENSIONS: tuple[Dimension, ...] = ("provider", "model", "feature", "customer", "environment")
REQUEST_DIMENSIONS: tuple[Dimension, ...] = ("feature", "customer", "environment")
CALL_METRICS: tuple[Metric, ...] = ("call_cost", "latency")


class UsageRow(BaseModel):
    bucket: datetime
    group: dict[str, str | None]
    calls: int
    requests: int | None = Field(
        description="Settled requests starting in the bucket; null when grouped by provider "
        "or model (a request spans models)."
    )
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: str = Field(description="Decimal string; unpriced calls are not in it.")
    unpriced_calls: int


class UsageAnswer(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    interval: Interval
    tz: str
    group_by: list[Dimension]
    rows: list[UsageRow]
    notes: list[str]

    model_config = {"populate_by_name": True}


class PercentileRow(BaseModel):
    bucket: datetime
    group: dict[str, str | None]
    count: int
    values: dict[str, float | None]


class PercentileAnswer(BaseModel):
    metric: Metric
    q: list[float]
    from_: datetime = Field(alias="from")
    to: datetime
    interval: Interval
    tz: str
    group_by: list[Dimension]
    rows: list[PercentileRow]
    notes: list[str]

    model_config = {"populate_by_name": True}


class RequestItem(BaseModel):
    request_id: str
    first_started_at: datetime
    last_ended_at: datetime
    duration_s: float
    calls: int
    unpriced_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: str
    feature: str | None
    customer: str | None
    environment: str | None
    user_id: str | None
    model_mix: dict[str, int]
    settled: bool


class CallItem(BaseModel):
    trace_id: str
    span_id: str
    request_id: str
    started_at: datetime
    duration_s: float
    provider: str | None
    model: str | None
    operation: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: str | None
    cost_source: str
    feature: str | None
    customer: str | None
    environment: str | None
    error_type: str | None


class RequestPage(BaseModel):
    items: list[RequestItem]
    next_cursor: str | None


class CallPage(BaseModel):
    items: list[CallItem]
    next_cursor: str | None
