from __future__ import annotations

from collections.abc import Iterator

import anthropic
import costline
import openai
import pytest
from costline.testing import CapturedSpans

from tests.sdk.fake_llm import FakeLLMServer


@pytest.fixture(autouse=True)
def strict_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own errors re-raise in its tests, so bugs are not hidden."""
    monkeypatch.setenv("COSTLINE_SDK_STRICT", "1")


@pytest.fixture(autouse=True)
def no_tiktoken_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken fetches encodings from the internet on first use: never from the tests.

    Tests that want the tiktoken estimate put an encoding in `estimate._encodings`.
    """
    from costline._internal import estimate

    monkeypatch.setattr(estimate, "_load", estimate._unavailable.add)


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(llm_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    llm_server.reset()
    yield llm_server
    llm_server.reset()


@pytest.fixture
def spans() -> Iterator[CapturedSpans]:
    """Instrumented clients, costline routed to memory; everything undone afterwards."""
    with costline.testing.capture_spans() as captured:
        costline.instrument()
        try:
            yield captured
        finally:
            costline.uninstrument()


@pytest.fixture
def openai_client(server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def async_openai_client(server: FakeLLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)


@pytest.fixture
def anthropic_client(server: FakeLLMServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def async_anthropic_client(server: FakeLLMServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)


@pytest.fixture
def isolated_runtime() -> Iterator[None]:
    """For tests that call configure(): put costline's routing back as it was afterwards."""
    from costline._internal import guard
    from costline._internal.runtime import _PROCESSORS, RUNTIME

    saved = dict(vars(RUNTIME))
    active = {id(p): p.active for p in _PROCESSORS.values()}
    guard._last_logged.clear()
    try:
        yield
    finally:
        costline.uninstrument()
        vars(RUNTIME).update(saved)
        for processor in _PROCESSORS.values():
            processor.active = active.get(id(processor), False)
        guard._last_logged.clear()
