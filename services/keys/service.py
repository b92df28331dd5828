"""API keys: created once, shown once, stored as a SHA-256 hash, checked per request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from services.models import ApiKey, Project
from services.models.api_key import KEY_SCOPES

KEY_PREFIX = "cl"


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """The one moment the plaintext key exists outside the caller's hands."""

    key: str
    key_id: int
    project_id: int
    project_name: str
    scope: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the project a key belongs to and what the key may do."""

    project_id: int
    key_id: int
    scope: str


def hash_key(key: str) -> bytes:
    # Keys carry 256 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).digest()


def get_or_create_project(session: Session, *, name: str, timezone: str = "UTC") -> Project:
    name = name.strip()
    if not name:
        raise BadRequest("project name must not be empty", field="project")
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(name=name, timezone=timezone)
        session.add(project)
        session.flush()
    return project


def create_key(session: Session, *, project_name: str, scope: str) -> CreatedKey:
    """Create a key for ``project_name`` (creating the project if needed)."""
    if scope not in KEY_SCOPES:
        raise BadRequest(
            f"unknown scope {scope!r}; use one of {', '.join(KEY_SCOPES)}", field="scope"
        )
    project = get_or_create_project(session, name=project_name)
    key = f"{KEY_PREFIX}_{scope}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        project_id=project.id, scope=scope, prefix=key[: len(scope) + 11], key_hash=hash_key(key)
    )
    session.add(row)
    session.flush()
    return CreatedKey(
        key=key, key_id=row.id, project_id=project.id, project_name=project.name, scope=scope
    )


def revoke_key(session: Session, *, key_id: int) -> None:
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"no active key with id {key_id}", field="key_id")


def list_keys(session: Session, *, project_name: str | None = None) -> list[tuple[ApiKey, str]]:
    query = select(ApiKey, Project.name).join(Project).order_by(ApiKey.id)
    if project_name:
        query = query.where(Project.name == project_name)
    return [(key, name) for key, name in session.execute(query).tuples()]


def authenticate(session: Session, *, authorization: str | None) -> Principal:
    """Resolve an ``Authorization: Bearer <key>`` header, or raise Unauthorized."""
    if not authorization:
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <key>'")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token.strip())))
    if row is None:
        raise Unauthorized("unknown API key; create one with `costline keys create`")
    if row.revoked_at is not None:
        raise Unauthorized("this API key was revoked; create a new one with `costline keys create`")
    return Principal(project_id=row.project_id, key_id=row.id, scope=row.scope)


# Which scopes satisfy which need: admin can do everything, read and ingest only their own.
_ALLOWED: dict[str, frozenset[str]] = {
    "ingest": frozenset({"ingest", "admin"}),
    "read": frozenset({"read", "admin"}),
    "admin": frozenset({"admin"}),
}


def require_scope(principal: Principal, needed: str) -> Principal:
    if principal.scope not in _ALLOWED[needed]:
        raise Forbidden(f"this {principal.scope} key cannot do this; it needs a {needed} key")
    return principal
