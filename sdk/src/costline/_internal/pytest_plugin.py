"""pytest plugin (entry point `pytest11`): the `costline_spans` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from costline.testing import CapturedSpans, capture_spans


@pytest.fixture
def costline_spans() -> Iterator[CapturedSpans]:
    """The spans costline emits during the test, captured in memory."""
    with capture_spans() as spans:
        yield spans
