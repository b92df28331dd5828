"""The OTLP/HTTP collector: ``POST /v1/traces``, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.collector.ingest import TraceIngestor, install_ingest_routes
from services.collector.metrics import CollectorMetrics
from services.core.db import make_engine, make_session_factory
from services.core.health import HealthChecker
from services.core.http import install_error_handlers, install_health_route


def create_app(
    *,
    database_url: str,
    broker_url: str | None,
    max_inflight: int = 4,
    max_body_bytes: int | None = None,
) -> FastAPI:
    app = FastAPI(title="costline collector", version="0.1.0", docs_url=None, redoc_url=None)
    engine = make_engine(
        database_url, pool_size=max_inflight + 1, application_name="costline-collector"
    )
    session_factory = make_session_factory(engine)
    metrics = CollectorMetrics()
    ingestor = TraceIngestor(
        engine=engine, session_factory=session_factory, metrics=metrics, max_inflight=max_inflight
    )
    if max_body_bytes is not None:
        ingestor.max_body_bytes = max_body_bytes
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.metrics = metrics
    app.state.ingestor = ingestor
    install_error_handlers(app)
    install_health_route(app, HealthChecker(engine=engine, broker_url=broker_url))
    install_ingest_routes(app, ingestor)

    @app.get("/metrics", tags=["health"])
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
