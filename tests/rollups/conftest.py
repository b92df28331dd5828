from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from services.partitions.service import maintain_partitions

BASE = datetime(2026, 3, 2, tzinfo=UTC)  # the calls of these tests start around here


@pytest.fixture
def prepared(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        maintain_partitions(session, today=BASE.date(), ahead_days=3)
    return session_factory
