"""List requests and calls, most expensive or most recent first, with keyset cursors."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.core.errors import BadRequest
from services.usage.params import Selection
from services.usage.schemas import CallItem, CallPage, RequestItem, RequestPage

Sort = Literal["-cost", "-started_at"]
MAX_LIMIT = 500


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def _decode_cursor(cursor: str | None, size: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise BadRequest(
            "cursor is not one this API returned; start again without it", field="cursor"
        )
    return values


def _filters(sel: Selection, params: dict[str, Any], *, prefix: str, raw: bool) -> str:
    clauses = []
    for dim, values in sel.filters.items():
        if raw and dim == "model":
            column = f"coalesce({prefix}.response_model, {prefix}.request_model, '')"
        else:
            column = f"coalesce({prefix}.{dim}, '')"
        params[f"f_{dim}"] = list(values)
        clauses.append(f" and {column} = any(:f_{dim})")
    return "".join(clauses)


def list_requests(
    session: Session, *, sel: Selection, sort: Sort, limit: int, cursor: str | None
) -> RequestPage:
    if set(sel.filters) - {"feature", "customer", "environment"}:
        raise BadRequest(
            "filters: requests can be filtered by feature, customer, environment", field="filters"
        )
    params: dict[str, Any] = {
        "p": sel.project_id,
        "start": sel.start,
        "end": sel.end,
        "limit": limit + 1,
    }
    order_value = "q.cost_usd" if sort == "-cost" else "q.first_started_at"
    after = _decode_cursor(cursor, 2)
    keyset = ""
    if after is not None:
        params["after_value"] = (
            Decimal(after[0]) if sort == "-cost" else datetime.fromisoformat(after[0])
        )
        params["after_id"] = after[1]
        keyset = f" and ({order_value}, q.request_id) < (:after_value, :after_id)"
    rows = (
        session.execute(
            text(f"""
        select q.*, not exists (select from request_queue w where w.project_id = q.project_id
                                and w.request_id = q.request_id) as settled
        from requests q
        where q.project_id = :p and q.first_started_at >= :start and q.first_started_at < :end
              {_filters(sel, params, prefix="q", raw=False)}{keyset}
        order by {order_value} desc, q.request_id desc
        limit :limit
    """),
            params,
        )
        .mappings()
        .all()
    )
    items = [
        RequestItem(
            request_id=r["request_id"],
            first_started_at=r["first_started_at"],
            last_ended_at=r["last_ended_at"],
            duration_s=(r["last_ended_at"] - r["first_started_at"]).total_seconds(),
            calls=r["calls"],
            unpriced_calls=r["unpriced_calls"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cache_read_tokens=r["cache_read_tokens"],
            cache_write_tokens=r["cache_write_tokens"],
            reasoning_tokens=r["reasoning_tokens"],
            cost_usd=str(r["cost_usd"].normalize()),
            feature=r["feature"] or None,
            customer=r["customer"] or None,
            environment=r["environment"] or None,
            user_id=r["user_id"],
            model_mix={k: int(v) for k, v in r["model_mix"].items()},
            settled=r["settled"],
        )
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        value = last["cost_usd"] if sort == "-cost" else last["first_started_at"].isoformat()
        next_cursor = _encode_cursor([str(value), last["request_id"]])
    return RequestPage(items=items, next_cursor=next_cursor)


def list_calls(
    session: Session, *, sel: Selection, sort: Sort, limit: int, cursor: str | None
) -> CallPage:
    params: dict[str, Any] = {
        "p": sel.project_id,
        "start": sel.start,
        "end": sel.end,
        "limit": limit + 1,
    }
    # Unpriced calls sort after every priced one (-1 is below any cost), never as $0.
    order_value = "coalesce(c.cost_usd, -1)" if sort == "-cost" else "c.started_at"
    after = _decode_cursor(cursor, 3)
    keyset = ""
    if after is not None:
        params["after_value"] = (
            Decimal(after[0]) if sort == "-cost" else datetime.fromisoformat(after[0])
        )
        params["after_started"] = datetime.fromisoformat(after[1])
        params["after_span"] = bytes.fromhex(after[2])
        keyset = (
            f" and ({order_value}, c.started_at, c.span_id) < "
            "(:after_value, :after_started, :after_span)"
        )
    rows = (
        session.execute(
            text(f"""
        select c.*, {order_value} as sort_value from llm_calls c
        where c.project_id = :p and c.started_at >= :start and c.started_at < :end
              {_filters(sel, params, prefix="c", raw=True)}{keyset}
        order by {order_value} desc, c.started_at desc, c.span_id desc
        limit :limit
    """),
            params,
        )
        .mappings()
        .all()
    )
    items = [
        CallItem(
            trace_id=r["trace_id"].hex(),
            span_id=r["span_id"].hex(),
            request_id=r["request_id"] or r["trace_id"].hex(),
            started_at=r["started_at"],
            duration_s=(r["ended_at"] - r["started_at"]).total_seconds(),
            provider=r["provider"],
            model=r["response_model"] or r["request_model"],
            operation=r["operation"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cache_read_tokens=r["cache_read_tokens"],
            cache_write_tokens=r["cache_write_tokens"],
            reasoning_tokens=r["reasoning_tokens"],
            cost_usd=None if r["cost_usd"] is None else str(r["cost_usd"].normalize()),
            cost_source=r["cost_source"],
            feature=r["feature"],
            customer=r["customer"],
            environment=r["environment"],
            error_type=r["error_type"],
        )
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        value = last["sort_value"] if sort == "-cost" else last["started_at"].isoformat()
        next_cursor = _encode_cursor(
            [str(value), last["started_at"].isoformat(), last["span_id"].hex()]
        )
    return CallPage(items=items, next_cursor=next_cursor)
