"""costline.track: mark a user-facing request and attribute every LLM call made under it.

Attribution lives in OpenTelemetry baggage (so W3C propagators carry it to other services);
the costline span processor copies it onto each span started under it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from costline._internal import semconv as sc
from costline._internal.guard import internal_error
from costline._internal.runtime import RUNTIME

F = TypeVar("F", bound=Callable[..., Any])


class _Scope:
    __slots__ = ("context", "request_id", "span")

    def __init__(self, span: Any, context: otel_context.Context, request_id: str | None) -> None:
        self.span = span
        self.context = context
        self.request_id = request_id

    def finish(self, exc: BaseException | None) -> None:
        try:
            if exc is not None and not isinstance(exc, GeneratorExit | StopIteration):
                self.span.set_attribute(sc.ERROR_TYPE, type(exc).__qualname__)
                self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            self.span.end()
        except Exception:
            internal_error("track.finish")


class Track:
    """What `costline.track(...)` returns: a decorator and a (sync or async) context manager."""

    __slots__ = ("_active", "customer", "feature", "new_request", "tags", "user")

    def __init__(
        self,
        *,
        feature: str | None = None,
        customer: str | None = None,
        user: str | None = None,
        tags: Mapping[str, object] | None = None,
        new_request: bool = False,
    ) -> None:
        self.feature = feature
        self.customer = customer
        self.user = user
        self.tags = dict(tags) if tags else None
        self.new_request = new_request
        # Scopes entered through `with`, per thread and task, so one Track can be shared.
        self._active: contextvars.ContextVar[tuple[tuple[_Scope | None, object], ...]] = (
            contextvars.ContextVar("costline_track", default=())
        )

    # -- opening and closing a scope -----------------------------------------------------

    def _start(self) -> _Scope | None:
        """Start the span and build the attributed context, without attaching it."""
        if not RUNTIME.enabled:
            return None
        try:
            ctx = otel_context.get_current()
            current = baggage.get_all(ctx)
            request_id: str | None = None
            if self.new_request or sc.COSTLINE_REQUEST_ID not in current:
                request_id = uuid.uuid4().hex
                ctx = baggage.set_baggage(sc.COSTLINE_REQUEST_ID, request_id, ctx)
            for key, value in (
                (sc.COSTLINE_FEATURE, self.feature),
                (sc.COSTLINE_CUSTOMER, self.customer),
                (sc.COSTLINE_USER, self.user),
            ):
                if value is not None:
                    ctx = baggage.set_baggage(key, str(value), ctx)
            if self.tags:
                for tag, tag_value in self.tags.items():
                    ctx = baggage.set_baggage(
                        sc.COSTLINE_TAG_PREFIX + str(tag), str(tag_value), ctx
                    )
            name = "costline.track " + self.feature if self.feature else "costline.track"
            span = RUNTIME.tracer.start_span(
                name,
                context=ctx,
                kind=SpanKind.INTERNAL,
                attributes={sc.COSTLINE_REQUEST_ROOT: True} if request_id else None,
            )
            return _Scope(span, trace.set_span_in_context(span, ctx), request_id)
        except Exception:
            internal_error("track.start")
            return None

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Track:
        scope = self._start()
        token = None
        if scope is not None:
            try:
                token = otel_context.attach(scope.context)
            except Exception:
                internal_error("track.enter")
        try:
            self._active.set((*self._active.get(), (scope, token)))
        except Exception:
            internal_error("track.enter")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            stack = self._active.get()
            if not stack:
                return
            (scope, token), rest = stack[-1], stack[:-1]
            self._active.set(rest)
            if token is not None:
                otel_context.detach(token)  # type: ignore[arg-type]
            if scope is not None:
                scope.finish(exc)
        except Exception:
            internal_error("track.exit")

    async def __aenter__(self) -> Track:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @property
    def request_id(self) -> str | None:
        """The request id in the current context (this block's, inside its `with`)."""
        value = baggage.get_baggage(sc.COSTLINE_REQUEST_ID)
        return value if isinstance(value, str) else None

    # -- decorator -------------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        if inspect.isasyncgenfunction(fn):
            return self._wrap_async_generator(fn)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):
            return self._wrap_coroutine(fn)  # type: ignore[return-value]
        return self._wrap_function(fn)  # type: ignore[return-value]

    def _wrap_function(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            scope = self._start()
            if scope is None:
                return fn(*args, **kwargs)
            token = _attach(scope)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _detach(token)
                scope.finish(exc)
                raise
            _detach(token)
            scope.finish(None)
            return result

        return tracked

    def _wrap_coroutine(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def tracked(*args: Any, **kwargs: Any) -> Any:
            scope = self._start()
            if scope is None:
                return await fn(*args, **kwargs)
            token = _attach(scope)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                _detach(token)
                scope.finish(exc)
                raise
            _detach(token)
            scope.finish(None)
            return result

        return tracked

    def _wrap_generator(self, fn: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def tracked(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            scope = self._start()
            if scope is None:
                return (yield from fn(*args, **kwargs))
            # The scope's context is attached only while the generator body runs, never
            # across a yield, so the caller's context is untouched between items.
            token = _attach(scope)
            try:
                generator = fn(*args, **kwargs)
            finally:
                _detach(token)
            sent: Any = None
            thrown: BaseException | None = None
            error: BaseException | None = None
            try:
                while True:
                    token = _attach(scope)
                    try:
                        if thrown is not None:
                            item = generator.throw(thrown)
                        else:
                            item = generator.send(sent)
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        _detach(token)
                    thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        token = _attach(scope)
                        try:
                            generator.close()
                        finally:
                            _detach(token)
                        raise
                    except BaseException as exc:
                        thrown = exc
            except BaseException as exc:
                error = exc
                raise
            finally:
                scope.finish(error)

        return tracked

    def _wrap_async_generator(
        self, fn: Callable[..., AsyncGenerator[Any, Any]]
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def tracked(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            scope = self._start()  # None when disabled: the same loop, nothing attached
            token = _attach(scope)
            try:
                generator = fn(*args, **kwargs)
            finally:
                _detach(token)
            sent: Any = None
            thrown: BaseException | None = None
            error: BaseException | None = None
            try:
                while True:
                    token = _attach(scope)
                    try:
                        if thrown is not None:
                            item = await generator.athrow(thrown)
                        else:
                            item = await generator.asend(sent)
                    except StopAsyncIteration:
                        return
                    finally:
                        _detach(token)
                    thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        token = _attach(scope)
                        try:
                            await generator.aclose()
                        finally:
                            _detach(token)
                        raise
                    except BaseException as exc:
                        thrown = exc
            except BaseException as exc:
                error = exc
                raise
            finally:
                if scope is not None:
                    scope.finish(error)

        return tracked


def _attach(scope: _Scope | None) -> object:
    if scope is None:
        return None
    try:
        return otel_context.attach(scope.context)
    except Exception:
        internal_error("track.attach")
        return None


def _detach(token: object) -> None:
    if token is None:
        return
    try:
        otel_context.detach(token)  # type: ignore[arg-type]
    except Exception:
        internal_error("track.detach")
