"""Session tokens: a logged-in client asks for one, and later identifies with it alone.

The commander's web console logs in once with SCRAM, takes a token (``session.token``)
and keeps it for its reconnects, so the password is not kept in the browser. A token is
32 random bytes (urlsafe base64), bound to the account and to the session that asked for
it. Only its SHA-256 is stored (table ``api_tokens``): a copy of the database lets nobody
identify, and a daemon restart keeps every token. Tokens end when they expire
(``api.token_ttl``), on ``session.logout``, and with their account: removing it,
disabling it or changing its password deletes them in the same transaction
(wallctl/accounts.py).

A token identifies as its account with the role the account has at that moment.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from wallctl.store import Actor, Store, _insert_audit

TOKEN_BYTES = 32
# Live tokens per account: asking for more drops the oldest (a client calling
# session.token in a loop cannot grow the database without bound).
MAX_TOKENS_PER_ACCOUNT = 32
# The urlsafe-base64 alphabet; 32 bytes encode to 43 characters.
TOKEN_PATTERN = r"^[A-Za-z0-9_\-]{43,128}$"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class TokenGrant:
    token: str
    expires: float


@dataclass(frozen=True)
class TokenOwner:
    account: str
    # The session that asked for the token.
    session: str
    expires: float


class Tokens:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def issue(self, actor: Actor, ttl: float) -> TokenGrant:
        """A new token for ``actor``'s account, bound to ``actor``'s session; audited."""
        assert actor.session is not None
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = token_hash(token)
        now = time.time()
        expires = round(now + ttl, 3)

        def job(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM api_tokens WHERE expires_ts <= ?", (now,))
            c.execute(
                "INSERT INTO api_tokens (token_hash, account, session, created_ts, expires_ts) "
                "VALUES (?, ?, ?, ?, ?)",
                (digest, actor.identity, actor.session, now, expires),
            )
            c.execute(
                "DELETE FROM api_tokens WHERE account = ? AND token_hash NOT IN (SELECT "
                "token_hash FROM api_tokens WHERE account = ? ORDER BY created_ts DESC "
                "LIMIT ?)",
                (actor.identity, actor.identity, MAX_TOKENS_PER_ACCOUNT),
            )
            # Never the token itself: the audit log is read by more people than admins.
            _insert_audit(c, now, actor, "session.token", None, None, "ok", {"expires": expires})

        await self.store.write(job)
        return TokenGrant(token, expires)

    async def owner(self, token: str) -> TokenOwner | None:
        """Whose live token this is; None for an unknown, revoked or expired one."""
        digest = token_hash(token)
        now = time.time()
        row = await self.store.read(
            lambda c: c.execute(
                "SELECT account, session, expires_ts FROM api_tokens "
                "WHERE token_hash = ? AND expires_ts > ?",
                (digest, now),
            ).fetchone()
        )
        return None if row is None else TokenOwner(str(row[0]), str(row[1]), float(row[2]))

    async def revoke_session(self, actor: Actor, used: bytes | None) -> int:
        """Revoke the tokens ``actor``'s session asked for and ``used``, the hash of the
        token it identified with; audited. Returns how many there were."""

        def job(c: sqlite3.Connection) -> int:
            n = c.execute("DELETE FROM api_tokens WHERE session = ?", (actor.session,)).rowcount
            if used is not None:
                n += c.execute("DELETE FROM api_tokens WHERE token_hash = ?", (used,)).rowcount
            _insert_audit(c, time.time(), actor, "session.logout", None, None, "ok", {"revoked": n})
            return int(n)

        return await self.store.write(job)

    async def revoke_hash(self, digest: bytes) -> int:
        return await self.store.write(
            lambda c: int(
                c.execute("DELETE FROM api_tokens WHERE token_hash = ?", (digest,)).rowcount
            )
        )

    async def revoke_sessions_tokens(self, session: str) -> int:
        """Revoke what one session asked for (an admin ending it)."""
        return await self.store.write(
            lambda c: int(
                c.execute("DELETE FROM api_tokens WHERE session = ?", (session,)).rowcount
            )
        )
