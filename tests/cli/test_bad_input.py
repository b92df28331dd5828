"""Bad settings and arguments: one clear line, non-zero exit, no traceback."""

import socket
from pathlib import Path

import pytest

from tests.cli.helpers import cli_env, costline, free_port


def _one_clear_line(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


def test_unreachable_database_names_the_setting(tmp_path: Path) -> None:
    env = cli_env(tmp_path, COSTLINE_DATABASE_URL=f"postgresql://u@127.0.0.1:{free_port()}/x")
    result = costline("migrate", env=env)
    assert result.returncode == 2
    _one_clear_line(result.stderr, "COSTLINE_DATABASE_URL is unreachable")
    assert len(result.stderr.strip().splitlines()) == 1


def test_malformed_database_url_names_the_setting(tmp_path: Path) -> None:
    result = costline("migrate", env=cli_env(tmp_path, COSTLINE_DATABASE_URL="mysql://a/b"))
    assert result.returncode == 2
    _one_clear_line(result.stderr, "COSTLINE_DATABASE_URL must be a postgresql:// URL")


def test_unreachable_broker_names_the_setting(tmp_path: Path, postgres_server_url: str) -> None:
    env = cli_env(
        tmp_path,
        COSTLINE_DATABASE_URL=postgres_server_url,
        COSTLINE_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
        COSTLINE_API_PORT=str(free_port()),
    )
    result = costline("api", env=env)
    assert result.returncode == 2
    _one_clear_line(result.stderr, "COSTLINE_BROKER_URL is unreachable")


def test_malformed_broker_url_names_the_setting(tmp_path: Path, postgres_server_url: str) -> None:
    env = cli_env(
        tmp_path,
        COSTLINE_DATABASE_URL=postgres_server_url,
        COSTLINE_BROKER_URL="kafka://x",
        COSTLINE_API_PORT=str(free_port()),
    )
    result = costline("api", env=env)
    assert result.returncode == 2
    _one_clear_line(result.stderr, "COSTLINE_BROKER_URL must be a redis:// or amqp:// URL")


def test_port_in_use_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = costline("up", env=cli_env(tmp_path, COSTLINE_COLLECTOR_PORT=str(port)))
    assert result.returncode == 2
    _one_clear_line(result.stderr, f"port {port}", "COSTLINE_COLLECTOR_PORT")


def test_invalid_setting_value_names_the_setting(tmp_path: Path) -> None:
    result = costline("migrate", env=cli_env(tmp_path, COSTLINE_API_PORT="ninety"))
    assert result.returncode == 2
    _one_clear_line(result.stderr, "COSTLINE_API_PORT is invalid")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--project", "shop", "--scope", "owner"], "--scope"),
        (["--project", "", "--scope", "read"], "--project"),
        (["--scope", "read"], "--project"),
    ],
)
def test_keys_create_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = costline("keys", "create", *args, env=cli_env(tmp_path))
    assert result.returncode == 2
    _one_clear_line(result.stderr, fragment)


def test_keys_create_quiet_prints_the_key_alone(
    tmp_path: Path, database_url: str, session_factory: object
) -> None:
    env = cli_env(tmp_path, COSTLINE_DATABASE_URL=database_url)
    result = costline(
        "keys", "create", "--project", "cli-test", "--scope", "ingest", "--quiet", env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("cl_ingest_")
