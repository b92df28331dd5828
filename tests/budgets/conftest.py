from tests.alerts.fake_slack import fake_slack  # noqa: F401 - fixture
