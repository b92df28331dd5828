"""The ``costline`` command. Every command reads the same settings (``COSTLINE_*``)."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from services.cli.alerts import alerts_app
from services.cli.lock import DataDirLock
from services.cli.ports import ensure_port_free
from services.cli.supervisor import Child, Supervisor, part_argv, wait_healthy
from services.core.db import one_off_transaction
from services.core.errors import ConfigurationError, CostlineError
from services.core.migrations import upgrade_to_head
from services.core.runtime import Runtime, runtime
from services.core.settings import Settings, get_settings
from services.core.urls import redact

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(alerts_app, name="alerts")

P = ParamSpec("P")
R = TypeVar("R")


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and exit code 2; no traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CostlineError as exc:
            typer.echo(f"costline: {exc.message}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "COSTLINE_" + str(first["loc"][0]).upper() if first["loc"] else "a setting"
        raise ConfigurationError(f"{name} is invalid: {first['msg']}") from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The embedded servers and Alembic narrate every step at INFO; keep the terminal readable.
    for chatty in ("pgserver", "alembic.runtime.migration"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    return settings


def _maintain_partitions(database_url: str, settings: Settings) -> None:
    from services.partitions.service import maintain_partitions

    with one_off_transaction(database_url) as session:
        maintain_partitions(
            session, today=datetime.now(UTC).date(), ahead_days=settings.partitions_ahead_days
        )


@contextmanager
def _database(settings: Settings, *, migrate: bool = False) -> Iterator[Session]:
    """A transaction on the configured database (embedded started and stopped if needed)."""
    with runtime(settings, need_broker=False) as rt:
        if migrate:
            upgrade_to_head(rt.database_url)
        with one_off_transaction(rt.database_url) as session:
            yield session


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, bool]]:
    state = {"stop": False}

    def handler(signum: int, frame: FrameType | None) -> None:
        state["stop"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@app.command()
@one_line_errors
def up() -> None:
    """Start everything: migrations, collector, API, one worker and beat. Ctrl-C stops all."""
    settings = _settings()
    lock = DataDirLock(settings.resolved_data_dir)
    lock.acquire()  # first: a second `up` on this data directory is the likelier mistake
    try:
        ensure_port_free(
            settings.collector_host, settings.collector_port, setting="COSTLINE_COLLECTOR_PORT"
        )
        ensure_port_free(settings.api_host, settings.api_port, setting="COSTLINE_API_PORT")
        with _stop_on_signals() as state, runtime(settings) as rt:
            _run_stack(settings, rt, state)
    finally:
        lock.release()


def _run_stack(settings: Settings, rt: Runtime, state: dict[str, bool]) -> None:
    typer.echo("costline: applying migrations …")
    upgrade_to_head(rt.database_url)
    _maintain_partitions(rt.database_url, settings)
    env = {
        **os.environ,
        "COSTLINE_DATABASE_URL": rt.database_url,
        "COSTLINE_BROKER_URL": rt.broker_url or "",
        "COSTLINE_DATA_DIR": str(settings.resolved_data_dir),
    }
    supervisor = Supervisor(
        [Child(name, part_argv(name)) for name in ("collector", "api", "worker", "beat")]
    )
    supervisor.start(env)
    try:
        for host, port in (
            (settings.collector_host, settings.collector_port),
            (settings.api_host, settings.api_port),
        ):
            wait_healthy(
                f"http://{_urlhost(host)}:{port}/healthz", timeout_s=90, supervisor=supervisor
            )
        _print_banner(settings, rt)
        while not state["stop"]:
            dead = supervisor.first_exited()
            if dead is not None:
                raise ConfigurationError(
                    f"the {dead.name} exited with code {dead.exited}; stopping everything"
                )
            time.sleep(0.2)
        typer.echo("costline: stopping …")
    finally:
        supervisor.stop()


def _urlhost(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _print_banner(settings: Settings, rt: Runtime) -> None:
    embedded = ", ".join(rt.started) or "none"
    lines = [
        "",
        "costline is up.",
        f"  collector  OTLP/HTTP  http://{_urlhost(settings.collector_host)}:"
        f"{settings.collector_port}/v1/traces",
        f"  REST API              http://{_urlhost(settings.api_host)}:{settings.api_port}"
        "  (docs at /docs)",
        "  worker + beat         Celery, 1 worker",
        f"  database              {redact(rt.database_url)}",
        f"  broker                {redact(rt.broker_url or '')}",
        f"  embedded servers      {embedded} (data in {settings.resolved_data_dir})",
        "",
        "Get a key (in another shell, same settings):",
        "  costline keys create --project my-app --scope ingest",
        "Ctrl-C stops everything.",
        "",
    ]
    typer.echo("\n".join(lines))


@app.command()
@one_line_errors
def migrate() -> None:
    """Apply database migrations (and create today's partitions)."""
    settings = _settings()
    with runtime(settings, need_broker=False) as rt:
        upgrade_to_head(rt.database_url)
        _maintain_partitions(rt.database_url, settings)
    typer.echo("costline: database is at the latest migration")


@keys_app.command("create")
@one_line_errors
def keys_create(
    project: Annotated[str, typer.Option(help="Project name; created if it does not exist.")],
    scope: Annotated[str, typer.Option(help="ingest (collector), read (API) or admin.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from services.keys.service import create_key

    if not project.strip():
        raise typer.BadParameter("must not be empty", param_hint="--project")
    if scope not in ("ingest", "read", "admin"):
        raise typer.BadParameter(
            f"{scope!r} is not one of ingest, read, admin", param_hint="--scope"
        )
    settings = _settings()
    with _database(settings, migrate=True) as session:
        created = create_key(session, project_name=project, scope=scope)
    if quiet:
        typer.echo(created.key)
        return
    typer.echo(
        f"Created {created.scope} key {created.key_id} for project {created.project_name!r}:"
    )
    typer.echo(f"\n  {created.key}\n")
    typer.echo("Store it now: it is not shown again (costline keeps only its hash).")


@keys_app.command("list")
@one_line_errors
def keys_list(
    project: Annotated[str | None, typer.Option(help="Only this project's keys.")] = None,
) -> None:
    """List keys (never the secrets)."""
    from rich.console import Console
    from rich.table import Table

    from services.keys.service import list_keys

    settings = _settings()
    table = Table("id", "project", "scope", "prefix", "created", "revoked")
    with _database(settings) as session:
        for key, project_name in list_keys(session, project_name=project):
            table.add_row(
                str(key.id),
                project_name,
                key.scope,
                key.prefix + "…",
                f"{key.created_at:%Y-%m-%d %H:%M}",
                f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
            )
    Console().print(table)


@keys_app.command("revoke")
@one_line_errors
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key id from `keys list`.")],
) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from services.keys.service import revoke_key

    settings = _settings()
    with _database(settings) as session:
        revoke_key(session, key_id=key_id)
    typer.echo(f"costline: key {key_id} revoked")


@app.command()
@one_line_errors
def report(
    last: Annotated[str, typer.Option(help="Window to report on: 24h, 7d, 4w …")] = "7d",
    project: Annotated[str | None, typer.Option(help="Project name (needed if several).")] = None,
) -> None:
    """Spend by feature and model, p50/p99 request cost and trend, most expensive requests."""
    from rich.console import Console

    from services.cli.report import build_report, choose_project, now_utc, parse_last, render

    window = parse_last(last)
    settings = _settings()
    with _database(settings) as session:
        chosen = choose_project(session, project)
        data = build_report(session, project=chosen, last=window, now=now_utc())
    render(data, Console())


def _serve(
    factory: Callable[..., Any],
    *,
    host: str,
    port: int,
    setting: str,
    workers: int = 1,
    worker_factory: str | None = None,
) -> None:
    import uvicorn

    settings = _settings()
    ensure_port_free(host, port, setting=setting)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    with runtime(settings) as rt:
        if workers > 1 and worker_factory is not None:
            # Each worker is a fresh interpreter that builds its app from the settings: pin
            # the resolved URLs, so none of them starts an embedded server of its own.
            os.environ["COSTLINE_DATABASE_URL"] = rt.database_url
            os.environ["COSTLINE_BROKER_URL"] = rt.broker_url or ""
            uvicorn.run(worker_factory, factory=True, workers=workers, **options)
        else:
            application = factory(database_url=rt.database_url, broker_url=rt.broker_url)
            uvicorn.run(application, **options)


def collector_workers(settings: Settings) -> int:
    """Collector processes to run: COSTLINE_COLLECTOR_WORKERS, else one per usable core, at
    most four.

    Decoding, normalizing and pricing are pure Python, so one process uses one core however
    many requests it serves; four bounds the database connections (each has its own pool).
    """
    if settings.collector_workers:
        return settings.collector_workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _collector_app(*, database_url: str, broker_url: str | None) -> Any:
    from services.collector.app import create_app  # only where requests are served

    return create_app(database_url=database_url, broker_url=broker_url)


def collector_worker_app() -> Any:
    """The app of one collector worker process (uvicorn imports this by name)."""
    settings = _settings()
    _exit_with_parent()
    if not settings.database_url:
        raise ConfigurationError("a collector worker needs COSTLINE_DATABASE_URL")
    return _collector_app(
        database_url=settings.database_url, broker_url=settings.broker_url or None
    )


def _exit_with_parent() -> None:
    # uvicorn stops its workers on SIGTERM and SIGINT; if it is killed outright, the workers
    # would keep serving on the inherited socket. Stop this one as soon as it is orphaned.
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@app.command()
@one_line_errors
def collector() -> None:
    """Run only the OTLP/HTTP collector (one worker process per core, up to four)."""
    settings = _settings()
    _serve(
        _collector_app,
        host=settings.collector_host,
        port=settings.collector_port,
        setting="COSTLINE_COLLECTOR_PORT",
        workers=collector_workers(settings),
        worker_factory="services.cli.main:collector_worker_app",
    )


@app.command()
@one_line_errors
def api() -> None:
    """Run only the REST API."""
    from services.api.app import create_app

    settings = _settings()
    _serve(create_app, host=settings.api_host, port=settings.api_port, setting="COSTLINE_API_PORT")


def _celery(argv: list[str]) -> None:
    settings = _settings()
    with runtime(settings) as rt:
        # Celery and its forked pool read settings from the environment: pin the resolved URLs.
        os.environ["COSTLINE_DATABASE_URL"] = rt.database_url
        os.environ["COSTLINE_BROKER_URL"] = rt.broker_url or ""
        get_settings.cache_clear()
        from workers.app import configure_celery
        from workers.db import configure_database

        celery = configure_celery(broker_url=rt.broker_url)
        configure_database(rt.database_url)
        celery.start(argv)


@app.command()
@one_line_errors
def worker() -> None:
    """Run one Celery worker."""
    settings = _settings()
    _celery(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
            "--hostname=costline@%h",
        ]
    )


@app.command()
@one_line_errors
def beat() -> None:
    """Run Celery beat (the schedule of periodic tasks)."""
    settings = _settings()
    schedule = settings.resolved_data_dir / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    _celery(["beat", f"--loglevel={settings.log_level}", f"--schedule={schedule}"])


if __name__ == "__main__":
    sys.exit(app())
