"""Terminal identities: an id, a display name and a bearer token kept only as SHA-256.

The token is 32 random bytes (256 bits), so a fast hash is enough to make the stored
value useless to whoever reads the database (as the API's session tokens,
wallctl/api/tokens.py); a password-style KDF would only slow down every WHIP request.
The CLI writes the table directly; the daemon reads the row on every WHIP request, so
an added or removed terminal counts at once without a reload.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass

from wallctl.errors import Conflict, InvalidField, NotFound
from wallctl.store import Actor, Store

TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
SOURCE_PREFIX = "mobile/"


@dataclass(frozen=True)
class TerminalInfo:
    id: str
    name: str
    created_ts: float
    created_by: str

    @property
    def source(self) -> str:
        return source_of(self.id)


def source_of(terminal: str) -> str:
    return SOURCE_PREFIX + terminal


def validate_terminal_id(value: object) -> str:
    if not isinstance(value, str) or TERMINAL_ID.match(value) is None:
        raise InvalidField(
            "a terminal id is 1-64 letters, digits, '_', '.', '-', starting with a letter or digit",
            field="terminal",
        )
    return value


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class Terminals:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, terminal: str, name: str, actor: Actor) -> str:
        """Create ``terminal``; return its bearer token (shown once, never stored)."""
        validate_terminal_id(terminal)
        if len(SOURCE_PREFIX + terminal) > 64:
            # Its wall source, mobile/<id>, must fit the 64 characters of a source id.
            raise InvalidField(
                f"a terminal id is at most {64 - len(SOURCE_PREFIX)} characters", field="terminal"
            )
        name = name or terminal
        if len(name) > 64 or any(ord(c) < 32 for c in name):
            raise InvalidField("a name is at most 64 printable characters", field="name")
        token = secrets.token_urlsafe(32)
        digest = token_hash(token)

        def job(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(
                    "INSERT INTO terminals (id, name, token_hash, created_ts, created_by) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (terminal, name, digest, time.time(), actor.identity),
                )
            except sqlite3.IntegrityError:
                return False
            return True

        if not self.store.write_sync(job):
            raise Conflict(f"terminal {terminal!r} already exists", field="terminal")
        return token

    def remove(self, terminal: str) -> None:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM terminals WHERE id = ?", (terminal,)).rowcount

        if not self.store.write_sync(job):
            raise NotFound(f"no terminal {terminal!r}", field="terminal")

    def list(self) -> list[TerminalInfo]:
        def q(conn: sqlite3.Connection) -> list[TerminalInfo]:
            rows = conn.execute(
                "SELECT id, name, created_ts, created_by FROM terminals ORDER BY id"
            ).fetchall()
            return [TerminalInfo(*r) for r in rows]

        return self.store.read_sync(q)

    def get(self, terminal: str) -> TerminalInfo | None:
        def q(conn: sqlite3.Connection) -> TerminalInfo | None:
            row = conn.execute(
                "SELECT id, name, created_ts, created_by FROM terminals WHERE id = ?",
                (terminal,),
            ).fetchone()
            return TerminalInfo(*row) if row else None

        return self.store.read_sync(q)

    def verify(self, terminal: str, token: str) -> TerminalInfo | None:
        """The terminal if ``token`` is its bearer token, else None (same time either way)."""
        if TERMINAL_ID.match(terminal) is None or not token or len(token) > 256:
            return None
        digest = token_hash(token)

        def q(conn: sqlite3.Connection) -> tuple[TerminalInfo, bytes] | None:
            row = conn.execute(
                "SELECT id, name, created_ts, created_by, token_hash FROM terminals WHERE id = ?",
                (terminal,),
            ).fetchone()
            return (TerminalInfo(*row[:4]), bytes(row[4])) if row else None

        found = self.store.read_sync(q)
        if found is None:
            hmac.compare_digest(digest, bytes(32))
            return None
        info, stored = found
        return info if hmac.compare_digest(digest, stored) else None


_FEED_PATH = re.compile(r"/terminals/([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})/feed\.h264$")


def whep_path_of(source_id: str, kind: str, url: str | None) -> str | None:
    """Where a configured ``mobile`` source is watched over WHEP: the terminal named by its
    feed URL (docs/terminals.md), else the terminal with the source's id."""
    if kind != "mobile":
        return None
    if source_id.startswith(SOURCE_PREFIX):
        return f"/whep/{source_id}"  # a terminal's own source, mobile/<id>
    m = _FEED_PATH.search(url or "")
    return f"/whep/{source_of(m.group(1) if m else source_id)}"
