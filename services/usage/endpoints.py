"""Usage routes (read key): thin — parse, authorise, call one service function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from services.core.deps import ReadKey, SessionDep
from services.core.errors import BadRequest
from services.models import Project
from services.usage import listing, service
from services.usage.params import Selection, build_selection, parse_group_by
from services.usage.schemas import (
    CallPage,
    Dimension,
    Interpolation,
    Interval,
    Metric,
    PercentileAnswer,
    RequestPage,
    UsageAnswer,
)

router = APIRouter(prefix="/v1", tags=["usage"])

From = Annotated[
    datetime | None,
    Query(alias="from", description="Start (ISO 8601 with offset); default 7 days before `to`."),
]
To = Annotated[datetime | None, Query(alias="to", description="End, exclusive; default now.")]
Values = Annotated[list[str] | None, Query()]
GroupBy = Annotated[
    list[str] | None,
    Query(
        description="Any of provider, model, feature, customer, environment "
        "(repeat or comma-separate)."
    ),
]


@dataclass
class Filters:
    """Filters on the dimensions, each repeatable (``model=a&model=b``)."""

    provider: Values = None
    model: Values = None
    feature: Values = None
    customer: Values = None
    environment: Values = None

    def by_dimension(self) -> dict[Dimension, list[str] | None]:
        return {
            "provider": self.provider,
            "model": self.model,
            "feature": self.feature,
            "customer": self.customer,
            "environment": self.environment,
        }


FiltersDep = Annotated[Filters, Depends()]


def _selection(
    session: Session,
    key: ReadKey,
    *,
    start: datetime | None,
    end: datetime | None,
    interval: Interval,
    tz: str | None,
    group_by: list[str] | None,
    filters: dict[Dimension, list[str] | None],
) -> Selection:
    project = session.get(Project, key.project_id)
    assert project is not None
    return build_selection(
        project_id=key.project_id,
        project_tz=project.timezone,
        start=start,
        end=end,
        interval=interval,
        tz=tz,
        group_by=parse_group_by(group_by),
        filters=filters,
        now=datetime.now(UTC),
    )


@router.get("/usage", response_model=UsageAnswer, response_model_by_alias=True)
def get_usage(
    session: SessionDep,
    key: ReadKey,
    filters: FiltersDep,
    start: From = None,
    end: To = None,
    interval: Interval = "day",
    tz: str | None = None,
    group_by: GroupBy = None,
) -> UsageAnswer:
    """Calls, settled requests, tokens by type, cost and unpriced calls per interval and group."""
    sel = _selection(
        session,
        key,
        start=start,
        end=end,
        interval=interval,
        tz=tz,
        group_by=group_by,
        filters=filters.by_dimension(),
    )
    return service.query_usage(session, sel=sel)


def _parse_q(raw: list[str] | None) -> list[float]:
    values: list[float] = []
    for item in raw or ["0.5,0.99"]:
        for part in item.split(","):
            try:
                q = float(part)
            except ValueError:
                raise BadRequest(f"q: {part!r} is not a number", field="q") from None
            if not 0 < q < 1:
                raise BadRequest(f"q: {q:g} is outside (0, 1); e.g. q=0.5,0.99", field="q")
            values.append(q)
    return values


@router.get("/percentiles", response_model=PercentileAnswer, response_model_by_alias=True)
def get_percentiles(
    session: SessionDep,
    key: ReadKey,
    filters: FiltersDep,
    metric: Metric,
    q: Values = None,
    start: From = None,
    end: To = None,
    interval: Interval = "day",
    tz: str | None = None,
    group_by: GroupBy = None,
    interpolation: Interpolation = "linear",
) -> PercentileAnswer:
    """Quantiles of per-call or per-request metrics, within 1 % relative error of
    ``percentile_cont`` (interpolation=linear, the default) or ``percentile_disc``
    (interpolation=nearest) over the same rows."""
    qs = _parse_q(q)
    sel = _selection(
        session,
        key,
        start=start,
        end=end,
        interval=interval,
        tz=tz,
        group_by=group_by,
        filters=filters.by_dimension(),
    )
    return service.query_percentiles(
        session, sel=sel, metric=metric, qs=qs, interpolation=interpolation
    )


Limit = Annotated[int, Query(ge=1, le=listing.MAX_LIMIT)]


@router.get("/requests", response_model=RequestPage)
def get_requests(
    session: SessionDep,
    key: ReadKey,
    filters: FiltersDep,
    start: From = None,
    end: To = None,
    sort: listing.Sort = "-started_at",
    limit: Limit = 50,
    cursor: str | None = None,
) -> RequestPage:
    """User-facing requests with their summed cost; `sort=-cost` for the most expensive."""
    sel = _selection(
        session,
        key,
        start=start,
        end=end,
        interval="day",
        tz=None,
        group_by=None,
        filters=filters.by_dimension(),
    )
    return listing.list_requests(session, sel=sel, sort=sort, limit=limit, cursor=cursor)


@router.get("/calls", response_model=CallPage)
def get_calls(
    session: SessionDep,
    key: ReadKey,
    filters: FiltersDep,
    start: From = None,
    end: To = None,
    sort: listing.Sort = "-started_at",
    limit: Limit = 50,
    cursor: str | None = None,
) -> CallPage:
    """Individual LLM calls (raw, within retention); `sort=-cost` for the most expensive."""
    sel = _selection(
        session,
        key,
        start=start,
        end=end,
        interval="day",
        tz=None,
        group_by=None,
        filters=filters.by_dimension(),
    )
    return listing.list_calls(session, sel=sel, sort=sort, limit=limit, cursor=cursor)
