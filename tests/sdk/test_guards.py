"""costline's own failures never reach the application (and do, in strict mode)."""

from __future__ import annotations

import logging
from typing import Any

import costline
import openai
import pytest
from costline._internal import guard, openai_
from costline._internal.runtime import RUNTIME
from costline.testing import CapturedSpans

MESSAGES = [{"role": "user", "content": "hi"}]


def _broken(*args: Any) -> Any:
    raise RuntimeError("costline bug")


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COSTLINE_SDK_STRICT")
    guard._last_logged.clear()


def test_internal_error_never_reaches_the_application(
    spans: CapturedSpans,
    openai_client: openai.OpenAI,
    lenient: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(openai_.CHAT, "on_response", _broken)
    monkeypatch.setattr(openai_.CHAT, "on_item", _broken)

    with caplog.at_level(logging.WARNING, logger="costline"):
        first = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        second = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        chunks = list(
            openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
        )

    assert first.id == second.id == "chatcmpl-123"
    assert len(chunks) >= 8
    assert len(spans.llm_calls()) == 3  # still ended and exported, just without usage
    complete_logs = [r for r in caplog.records if "call.complete" in r.getMessage()]
    assert len(complete_logs) == 1  # logged once, not per call
    assert any("stream.observe" in r.getMessage() for r in caplog.records)


def test_strict_mode_re_raises_internal_errors(
    spans: CapturedSpans, openai_client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_.CHAT, "on_response", _broken)
    with pytest.raises(RuntimeError, match="costline bug"):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_broken_tracer_lets_calls_through(
    spans: CapturedSpans,
    openai_client: openai.OpenAI,
    lenient: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class BrokenTracer:
        start_span = _broken

    monkeypatch.setattr(RUNTIME, "tracer", BrokenTracer())

    completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with costline.track(feature="f"):
        pass

    @costline.track(feature="g")
    def work() -> int:
        return 42

    assert completion.id == "chatcmpl-123"
    assert work() == 42


def test_public_api_swallows_its_own_errors(lenient: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from costline._internal import runtime

    monkeypatch.setattr(runtime, "configure", _broken)
    monkeypatch.setattr(runtime, "flush", _broken)
    assert costline.configure(endpoint="http://127.0.0.1:9") is None
    assert costline.flush() is False
    tracker = costline.track(tags=5)  # type: ignore[arg-type]
    with tracker:
        pass
