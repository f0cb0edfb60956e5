"""The JSON API under ``/api/v1``: health, the current user, the user's API tokens and the
OpenAPI schema. Errors are ``application/problem+json`` (see :mod:`kehu.web.errors`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from kehu.store.users import (
    NewToken,
    TokenIn,
    TokenOut,
    UserOut,
    create_token,
    list_tokens,
    revoke_token,
)
from kehu.web.deps import CurrentUser, StoreDep

PREFIX = "/api/v1"
DB_INT_MAX = 2**63 - 1  # ids are 64-bit database integers: larger ones are a 422, not a 500
PROBLEM = {"description": "Problem details (RFC 9457)",
           "content": {"application/problem+json": {}}}

router = APIRouter(prefix=PREFIX, tags=["api"],
                   responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM})


class Health(BaseModel):
    status: str
    version: str


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness check; the only API route open without signing in."""
    import kehu

    return Health(status="ok", version=str(kehu.__version__))


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: CurrentUser) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    return user.user


@router.get("/tokens", response_model=list[TokenOut])
def tokens(user: CurrentUser, store: StoreDep) -> list[TokenOut]:
    """Your API tokens (their secrets are shown only when created)."""
    return list_tokens(store, user.user.id)


@router.post("/tokens", response_model=NewToken, status_code=201)
def new_token(body: TokenIn, user: CurrentUser, store: StoreDep) -> NewToken:
    """Create an API token for scripts: send it as ``Authorization: Bearer <token>``."""
    return create_token(store, user.user.id, body, actor=user.actor)


@router.delete("/tokens/{token_id}", status_code=204, responses={404: PROBLEM})
def delete_token(token_id: Annotated[int, Path(ge=1, le=DB_INT_MAX)], user: CurrentUser,
                 store: StoreDep) -> Response:
    revoke_token(store, user.user.id, token_id, actor=user.actor)
    return Response(status_code=204)
