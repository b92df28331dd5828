"""An independent, from-scratch recomputation of the rollups from raw rows, in Python."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.analytics.sketch import key_for

ZERO_KEY = -(2**31)
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _key(value: float) -> int:
    key = key_for(value)
    return ZERO_KEY if key is None else key


@dataclass
class Cell:
    counts: Counter[str] = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    hists: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def as_comparable(self) -> tuple[Any, ...]:
        return (
            dict(self.counts),
            self.cost.normalize(),
            {name: dict(h) for name, h in sorted(self.hists.items()) if h},
        )


def raw_calls(session: Session) -> list[dict[str, Any]]:
    return [dict(row) for row in session.execute(text("select * from llm_calls")).mappings()]


def expected_call_cells(calls: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    cells: dict[tuple[Any, ...], Cell] = defaultdict(Cell)
    for c in calls:
        hour = c["started_at"].replace(minute=0, second=0, microsecond=0)
        model = c["response_model"] or c["request_model"] or ""
        for grain in (0, 1):
            customer = (c["customer"] or "") if grain == 0 else ""
            cell = cells[
                (
                    c["project_id"],
                    grain,
                    hour,
                    c["provider"] or "",
                    model,
                    c["feature"] or "",
                    customer,
                    c["environment"] or "",
                )
            ]
            cell.counts["calls"] += 1
            cell.counts["unpriced_calls"] += c["cost_usd"] is None
            for t in TOKENS:
                cell.counts[t] += c[t]
            if c["cost_usd"] is not None:
                cell.cost += c["cost_usd"]
                cell.hists["call_cost"][_key(float(c["cost_usd"]))] += 1
            latency = max((c["ended_at"] - c["started_at"]).total_seconds(), 0.0)
            cell.hists["latency"][_key(latency)] += 1
    return {k: v.as_comparable() for k, v in cells.items()}


def expected_requests(calls: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        grouped[(c["project_id"], c["request_id"] or c["trace_id"].hex())].append(c)
    requests = {}
    for key, members in grouped.items():
        first = min(members, key=lambda c: (c["started_at"], c["span_id"]))
        priced = [c["cost_usd"] for c in members if c["cost_usd"] is not None]
        requests[key] = {
            "hour": first["started_at"].replace(minute=0, second=0, microsecond=0),
            "feature": first["feature"] or "",
            "customer": first["customer"] or "",
            "environment": first["environment"] or "",
            "calls": len(members),
            "unpriced_calls": len(members) - len(priced),
            "cost": sum(priced, Decimal(0)),
            "priced": bool(priced),
            **{t: sum(c[t] for c in members) for t in TOKENS},
        }
    return requests


def expected_request_cells(
    requests: dict[tuple[Any, ...], dict[str, Any]],
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    cells: dict[tuple[Any, ...], Cell] = defaultdict(Cell)
    for (project_id, _), r in requests.items():
        day = r["hour"].astimezone(UTC).replace(hour=0)
        for grain, at in ((0, r["hour"]), (1, r["hour"]), (2, day)):
            customer = r["customer"] if grain == 0 else ""
            cell = cells[(project_id, grain, at, r["feature"], customer, r["environment"])]
            cell.counts["requests"] += 1
            cell.counts["calls"] += r["calls"]
            cell.counts["unpriced_calls"] += r["unpriced_calls"]
            for t in TOKENS:
                cell.counts[t] += r[t]
            cell.cost += r["cost"]
            if r["priced"]:
                cell.hists["request_cost"][_key(float(r["cost"]))] += 1
            cell.hists["request_tokens"][_key(float(r["input_tokens"] + r["output_tokens"]))] += 1
            cell.hists["calls_per_request"][_key(float(r["calls"]))] += 1
    return {k: v.as_comparable() for k, v in cells.items()}


def stored_call_cells(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out = {}
    for r in session.execute(text("select * from call_rollups")).mappings():
        cell = Cell(
            counts=Counter(
                {
                    "calls": r["calls"],
                    "unpriced_calls": r["unpriced_calls"],
                    **{t: r[t] for t in TOKENS},
                }
            ),
            cost=r["cost_usd"],
        )
        for name in ("call_cost", "latency"):
            cell.hists[name] = Counter(
                dict(zip(r[f"{name}_keys"], r[f"{name}_counts"], strict=True))
            )
        out[
            (
                r["project_id"],
                r["grain"],
                r["hour"],
                r["provider"],
                r["model"],
                r["feature"],
                r["customer"],
                r["environment"],
            )
        ] = cell.as_comparable()
    return out


def stored_request_cells(session: Session) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out = {}
    for r in session.execute(text("select * from request_rollups")).mappings():
        cell = Cell(
            counts=Counter(
                {
                    "requests": r["requests"],
                    "calls": r["calls"],
                    "unpriced_calls": r["unpriced_calls"],
                    **{t: r[t] for t in TOKENS},
                }
            ),
            cost=r["cost_usd"],
        )
        for name in ("request_cost", "request_tokens", "calls_per_request"):
            cell.hists[name] = Counter(
                dict(zip(r[f"{name}_keys"], r[f"{name}_counts"], strict=True))
            )
        out[
            (r["project_id"], r["grain"], r["hour"], r["feature"], r["customer"], r["environment"])
        ] = cell.as_comparable()
    return out
