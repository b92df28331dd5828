"""Typed errors: domain code raises them, one handler per app renders them."""

from __future__ import annotations


class CostlineError(Exception):
    """Base error. ``status`` is the HTTP status a route answers with."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ConfigurationError(CostlineError):
    """A setting is missing, malformed or points at something unreachable."""

    code = "configuration_error"


class Unauthorized(CostlineError):
    status = 401
    code = "unauthorized"


class Forbidden(CostlineError):
    status = 403
    code = "forbidden"


class NotFound(CostlineError):
    status = 404
    code = "not_found"


class BadRequest(CostlineError):
    status = 400
    code = "bad_request"
