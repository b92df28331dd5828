"""Raw call rows for the rollup tests: one row as the collector writes it, and random
calls around ``BASE``."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.ingest.service import CALL_COLUMNS
from tests.rollups.conftest import BASE

FAR_FUTURE = datetime.now(UTC) + timedelta(days=1)  # every request is due to settle


def random_call(rng: random.Random) -> dict[str, Any]:
    started = BASE + timedelta(hours=rng.randint(-24 * 40, 48), seconds=rng.randint(0, 3599))
    return {
        "started_at": started,
        "ended_at": started + timedelta(milliseconds=rng.randint(0, 120_000)),
        "request_id": rng.choice([None, "r1", "r2", "r3", "r4"]),
        "trace_id": rng.choice([b"\x01" * 16, b"\x02" * 16, os.urandom(16)]),
        "span_id": os.urandom(8),
        "cost_usd": rng.choice(
            [None, Decimal(0), Decimal(str(round(rng.lognormvariate(-5, 2), 10)))]
        ),
        "input_tokens": rng.randint(0, 200_000),
        "output_tokens": rng.randint(0, 20_000),
        "cache_read_tokens": rng.randint(0, 1000),
        "feature": rng.choice([None, "search", "chat"]),
        "customer": rng.choice([None, "acme", "globex"]),
        "model": rng.choice(["gpt-4o", "claude-sonnet-4"]),
    }


def call_row(project_id: int, call: dict[str, Any]) -> tuple[Any, ...]:
    values: dict[str, Any] = {column: None for column in CALL_COLUMNS}
    values.update(
        project_id=project_id,
        started_at=call["started_at"],
        trace_id=call["trace_id"],
        span_id=call["span_id"],
        ended_at=call["ended_at"],
        request_id=call["request_id"],
        provider="openai",
        request_model=call["model"],
        response_model=call["model"],
        input_tokens=call["input_tokens"],
        output_tokens=call["output_tokens"],
        cache_read_tokens=call["cache_read_tokens"],
        cache_write_tokens=0,
        reasoning_tokens=0,
        usage_estimated=False,
        cost_usd=call["cost_usd"],
        cost_source="unpriced" if call["cost_usd"] is None else "computed",
        feature=call["feature"],
        customer=call["customer"],
        environment="prod",
        tags={},
        status_code=0,
    )
    return tuple(values[column] for column in CALL_COLUMNS)
