from pathlib import Path

import pytest

from services.core.errors import ConfigurationError
from services.core.settings import Settings
from services.core.urls import normalize_database_url, redact, validate_broker_url


def test_env_prefix_moves_the_api_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLINE_API_PORT", "9000")
    monkeypatch.setenv("COSTLINE_DATA_DIR", "/srv/costline")
    settings = Settings()
    assert settings.api_port == 9000
    assert settings.data_dir == Path("/srv/costline")
    assert settings.collector_port == 4318


def test_defaults_embed_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COSTLINE_DATABASE_URL", "COSTLINE_BROKER_URL", "COSTLINE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url is None and settings.broker_url is None
    assert settings.data_dir == Path(".costline")


def test_database_url_uses_psycopg3_driver() -> None:
    assert normalize_database_url("postgresql://u:p@h:5432/db").startswith(
        "postgresql+psycopg://u:p@h:5432/db"
    )


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("mysql://u@h/db", "must be a postgresql:// URL"),
        ("postgresql://u@h:5432", "names no database"),
        ("not a url at all", "not a valid URL"),
    ],
)
def test_bad_database_url_names_the_setting(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        normalize_database_url(raw)
    assert "COSTLINE_DATABASE_URL" in info.value.message
    assert fragment in info.value.message


def test_bad_broker_url_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="COSTLINE_BROKER_URL must be a redis"):
        validate_broker_url("http://example.invalid/")
    assert validate_broker_url("amqp://guest:guest@127.0.0.1:5672//")


def test_redact_hides_passwords() -> None:
    assert redact("amqp://guest:secret@host:5672//") == "amqp://guest:***@host:5672//"
