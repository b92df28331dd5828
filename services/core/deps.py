"""FastAPI dependencies: the request owns the transaction; keys decide the project."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from services.core.db import transaction
from services.keys.service import Principal, authenticate, require_scope


def get_session(request: Request) -> Iterator[Session]:
    """Commit when the route returns, roll back when it raises."""
    with transaction(request.app.state.session_factory) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def scoped(needed: str) -> Callable[..., Principal]:
    def dependency(
        session: SessionDep, authorization: Annotated[str | None, Header()] = None
    ) -> Principal:
        return require_scope(authenticate(session, authorization=authorization), needed)

    return dependency


ReadKey = Annotated[Principal, Depends(scoped("read"))]
AdminKey = Annotated[Principal, Depends(scoped("admin"))]
