"""The session methods: tokens for reconnecting without the password, logout, and an
administrator ending another session.

Registered like any capability's methods (``methods.EXTENSIONS``); they reach the server
through ``ApiContext.control``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool

from wallctl.api.methods import (
    ApiContext,
    NoParams,
    Params,
    Result,
    SessionControl,
    SessionInfo,
    method,
)
from wallctl.errors import InvalidField, Unavailable
from wallctl.store import Actor

KICK_REASON_MAX = 80


class TokenResult(Result):
    # Opaque: 32 random bytes, urlsafe base64. Give it as `token` in identify.
    token: str
    # Unix time after which it no longer identifies.
    expires: float


class LogoutResult(Result):
    # Tokens revoked: those this session asked for and the one it identified with.
    revoked: int


class KickParams(Params):
    session: Annotated[str, Field(min_length=1, max_length=64)]
    # Shown to the client in the close reason, and kept in the audit log.
    reason: Annotated[str, Field(min_length=1, max_length=KICK_REASON_MAX)] | None = None
    # Also revoke the tokens that session asked for or identified with, so it cannot
    # simply reconnect with them.
    revoke_tokens: StrictBool = False


class KickResult(Result):
    session: SessionInfo
    revoked_tokens: int


def _control(ctx: ApiContext) -> SessionControl:
    if ctx.control is None:
        raise Unavailable("sessions are managed by the API server only")
    return ctx.control


@method(
    "session.token",
    "A token to identify with later instead of the password (web console reconnects).",
    "read",
    NoParams,
    TokenResult,
)
async def _token(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    grant = await _control(ctx).issue_token(actor)
    return TokenResult(token=grant.token, expires=grant.expires)


@method(
    "session.logout",
    "Revoke this session's tokens (asked for here, or used to identify).",
    "read",
    NoParams,
    LogoutResult,
)
async def _logout(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return LogoutResult(revoked=await _control(ctx).logout(actor))


@method(
    "session.kick",
    "End another session: it is closed with code 4012 and the reason; audited.",
    "sessions",
    KickParams,
    KickResult,
)
async def _kick(ctx: ApiContext, actor: Actor, p: KickParams, rev: int | None) -> Result:
    if p.reason is not None and not p.reason.isprintable():
        raise InvalidField("reason must not contain control characters", field="params.reason")
    info, revoked = await _control(ctx).kick(actor, p.session, p.reason, p.revoke_tokens)
    return KickResult(session=info, revoked_tokens=revoked)
