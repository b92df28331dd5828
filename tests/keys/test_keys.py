import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import BadRequest, Forbidden, Unauthorized
from services.keys.service import authenticate, create_key, require_scope, revoke_key
from services.models import ApiKey, Project


def test_created_key_is_stored_only_as_a_hash(db: Session) -> None:
    created = create_key(db, project_name="shop", scope="ingest")
    row = db.scalar(select(ApiKey).where(ApiKey.id == created.key_id))
    assert row is not None
    assert row.key_hash == hashlib.sha256(created.key.encode()).digest()
    assert created.key not in (row.prefix, row.key_hash.hex())
    assert created.key.startswith("cl_ingest_")


def test_key_creation_creates_the_project_once(db: Session) -> None:
    create_key(db, project_name="shop", scope="ingest")
    create_key(db, project_name="shop", scope="read")
    assert db.scalars(select(Project.name)).all() == ["shop"]


def test_bearer_key_authenticates_to_its_project(db: Session) -> None:
    created = create_key(db, project_name="shop", scope="read")
    principal = authenticate(db, authorization=f"Bearer {created.key}")
    assert principal.project_id == created.project_id
    assert principal.scope == "read"


@pytest.mark.parametrize(
    "header", [None, "", "Basic abc", "Bearer ", "Bearer cl_read_not-a-real-key"]
)
def test_missing_or_unknown_key_is_unauthorized(db: Session, header: str | None) -> None:
    with pytest.raises(Unauthorized):
        authenticate(db, authorization=header)


def test_revoked_key_is_refused(db: Session) -> None:
    created = create_key(db, project_name="shop", scope="ingest")
    revoke_key(db, key_id=created.key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(db, authorization=f"Bearer {created.key}")


def test_scopes_do_not_stretch(db: Session) -> None:
    read = authenticate(
        db, authorization=f"Bearer {create_key(db, project_name='p', scope='read').key}"
    )
    admin = authenticate(
        db, authorization=f"Bearer {create_key(db, project_name='p', scope='admin').key}"
    )
    with pytest.raises(Forbidden):
        require_scope(read, "ingest")
    with pytest.raises(Forbidden):
        require_scope(read, "admin")
    assert require_scope(admin, "read") is admin


@pytest.mark.parametrize(("project", "scope"), [("", "read"), ("   ", "read"), ("p", "owner")])
def test_bad_project_or_scope_is_a_clear_error(db: Session, project: str, scope: str) -> None:
    with pytest.raises(BadRequest):
        create_key(db, project_name=project, scope=scope)
