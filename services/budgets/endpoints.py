from __future__ import annotations

from fastapi import APIRouter, Response

from services.alerts.clock import NowDep
from services.budgets import service
from services.budgets.schemas import (
    BudgetCreate,
    BudgetOut,
    BudgetStatus,
    BudgetUpdate,
    ForecastOut,
)
from services.core.deps import AdminKey, ReadKey, SessionDep

router = APIRouter(prefix="/v1/budgets", tags=["budgets"])


@router.post("", status_code=201)
def create_budget(params: BudgetCreate, session: SessionDep, auth: AdminKey,
                  now: NowDep) -> BudgetOut:
    return service.create_budget(session, project_id=auth.project_id, params=params, now=now)


@router.get("")
def list_budgets(session: SessionDep, auth: ReadKey) -> list[BudgetOut]:
    return service.list_budgets(session, project_id=auth.project_id)


@router.get("/{budget_id}")
def get_budget(budget_id: int, session: SessionDep, auth: ReadKey,
               now: NowDep) -> BudgetStatus:
    return service.budget_status(session, project_id=auth.project_id, budget_id=budget_id,
                                 now=now)


@router.get("/{budget_id}/forecast")
def get_forecast(budget_id: int, session: SessionDep, auth: ReadKey,
                 now: NowDep) -> ForecastOut:
    return service.refresh_forecast(session, project_id=auth.project_id, budget_id=budget_id,
                                    now=now)


@router.patch("/{budget_id}")
def update_budget(budget_id: int, params: BudgetUpdate, session: SessionDep, auth: AdminKey,
                  now: NowDep) -> BudgetOut:
    return service.update_budget(session, project_id=auth.project_id, budget_id=budget_id,
                                 params=params, now=now)


@router.delete("/{budget_id}", status_code=204)
def delete_budget(budget_id: int, session: SessionDep, auth: AdminKey) -> Response:
    service.delete_budget(session, project_id=auth.project_id, budget_id=budget_id)
    return Response(status_code=204)
