"""The REST API: an app factory mounting one router per domain."""

from __future__ import annotations

from fastapi import FastAPI

from services.alerts.endpoints import router as alerts_router
from services.anomalies.endpoints import router as anomalies_router
from services.budgets.endpoints import router as budgets_router
from services.channels.endpoints import router as channels_router
from services.core.db import make_engine, make_session_factory
from services.core.health import HealthChecker
from services.core.http import install_error_handlers, install_health_route
from services.usage import endpoints as usage_endpoints


def create_app(*, database_url: str, broker_url: str | None) -> FastAPI:
    app = FastAPI(title="costline API", version="0.1.0")
    engine = make_engine(database_url, application_name="costline-api")
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    install_error_handlers(app)
    install_health_route(app, HealthChecker(engine=engine, broker_url=broker_url))
    app.include_router(channels_router)
    app.include_router(budgets_router)
    app.include_router(alerts_router)
    app.include_router(anomalies_router)
    app.include_router(usage_endpoints.router)
    return app
