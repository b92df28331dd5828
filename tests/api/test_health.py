from fastapi.testclient import TestClient

from services.api.app import create_app as create_api
from services.collector.app import create_app as create_collector


def test_both_apps_report_healthy_database_and_broker(database_url: str, broker_url: str) -> None:
    for factory in (create_api, create_collector):
        with TestClient(factory(database_url=database_url, broker_url=broker_url)) as client:
            response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_unreachable_broker_is_503_naming_the_broker(database_url: str) -> None:
    app = create_api(database_url=database_url, broker_url="redis://127.0.0.1:1/0")
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("error")


def test_unreachable_database_is_503_naming_the_database(broker_url: str) -> None:
    app = create_collector(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", broker_url=broker_url
    )
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error")
    assert response.json()["broker"] == "ok"
