"""What both ASGI apps share: error rendering as problem+json and the health route."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.core.errors import CostlineError
from services.core.health import HealthChecker

logger = logging.getLogger(__name__)


def problem(status: int, code: str, detail: str, field: str | None = None) -> JSONResponse:
    body: dict[str, object] = {"status": status, "title": code, "detail": detail}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CostlineError)
    async def _costline_error(request: Request, exc: CostlineError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("query", "body", "path")]
        field = ".".join(loc) or None
        return problem(
            400, "bad_request", f"{field or 'request'}: {first.get('msg', 'invalid')}", field
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal_error", "internal error; the server log has the details")


def install_health_route(app: FastAPI, checker: HealthChecker) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        status, body = checker.report()
        return JSONResponse(body, status_code=status)
