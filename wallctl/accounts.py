"""Accounts, roles and SCRAM-SHA-256 authentication (RFC 5802, RFC 7677).

What is stored per account is the SCRAM verifier: salt, iteration count, StoredKey =
H(ClientKey) and ServerKey. Neither the password nor SaltedPassword is kept, so a stolen
database does not let anyone log in as that account without first guessing the password
(each guess costs one PBKDF2 run of ``iterations`` rounds); the plain "hash of the
password sent in the clear" scheme of obs-websocket does not have that property.

The exchange, without channel binding (gs2 header ``n,,``, hence ``c=biws``)::

    client-first-bare = "n=" account "," "r=" client_nonce
    server-first      = "r=" nonce "," "s=" salt_b64 "," "i=" iterations
    client-final-wo-p = "c=biws," "r=" nonce
    AuthMessage       = client-first-bare "," server-first "," client-final-wo-p

Account names are 1-64 characters of ``[A-Za-z0-9_.@-]`` and CJK unified ideographs
(U+3400-U+4DBF, U+4E00-U+9FFF), starting with a letter, digit or ideograph. That set
needs neither SASLprep nor SCRAM's ``=2C``/``=3D`` escaping, cannot smuggle control or
bidi characters into logs and audit lines, and cannot start with ``-`` (which a CLI
would read as an option). Names are unique ignoring ASCII case and found ignoring it,
so ``Admin`` and ``admin`` cannot be two people in the audit log. ``system`` is reserved
for the daemon's own audit entries.

Passwords are used as their UTF-8 bytes without SASLprep: a client must send exactly
what the person typed (no Unicode normalisation on either side).

The daemon and the CLI may both change accounts (SQLite WAL lets the CLI write while the
daemon runs). The daemon's in-memory copy is not trusted for logins: :meth:`begin`
re-reads the one account row it is about to challenge on a private read-only
connection (a primary-key lookup, well under a millisecond), so an account removed,
disabled, re-roled or re-passworded from the CLI takes effect at its next login.
:meth:`list` and :meth:`get` answer from memory, refreshed by :meth:`load` (call it on
SIGHUP) and by every :meth:`begin` for the account concerned. Sessions already
authenticated keep the role they logged in with until they reconnect.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from wallctl.errors import Conflict, InvalidField, NotFound, WallctlError
from wallctl.logs import get_logger
from wallctl.store import SYSTEM, Actor, Store, _insert_audit

__all__ = [
    "DEFAULT_ITERATIONS",
    "MIN_ITERATIONS",
    "AccountInfo",
    "Accounts",
    "AuthError",
    "Identity",
    "Role",
    "ScramChallenge",
    "ScramState",
    "role_allows",
    "scram_auth_message",
    "scram_client_proof",
    "validate_account_name",
]

log = get_logger("wallctl.accounts")

# 16384 rounds cost about 4 ms of one core here (measured: 0.97 ms at 4096, 3.9 ms at
# 16384, 15 ms at 65536). The server pays it only when a password is set; each login
# pays it on the client, and each offline guess at a stolen verifier pays it too.
DEFAULT_ITERATIONS = 16384
MIN_ITERATIONS = 4096  # RFC 7677 §4
# A verifier with more rounds than this would let a client be told to spin for minutes.
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16
SERVER_NONCE_BYTES = 18
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 128
MIN_NONCE_CHARS = 16
MAX_NONCE_CHARS = 256
RESERVED_NAMES = frozenset({"system"})

AUTH_FAILED = "authentication failed"
MALFORMED_ACCOUNT = "malformed account name"
MALFORMED_NONCE = "malformed client nonce"
MALFORMED_PROOF = "malformed client proof"

_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_ACCOUNT_RE = re.compile(f"[A-Za-z0-9{_CJK}][A-Za-z0-9_.@\\-{_CJK}]{{0,63}}")
_SECRET_NAME = "fake_salt_key"
# SQLite's busy wait: a login must not stall the event loop behind a long checkpoint;
# past this the cached row is used instead.
_LOOKUP_TIMEOUT_S = 0.25


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def role_allows(have: Role, need: Role) -> bool:
    return _RANK[have] >= _RANK[need]


@dataclass(frozen=True)
class Identity:
    account: str
    role: Role
    display_name: str


@dataclass(frozen=True)
class AccountInfo:
    """An account as an administrator sees it; never the verifier."""

    identity: Identity
    disabled: bool
    created_ts: float
    updated_ts: float


@dataclass(frozen=True)
class ScramChallenge:
    salt: str
    iterations: int
    nonce: str


@dataclass
class ScramState:
    """One login attempt between :meth:`Accounts.begin` and :meth:`Accounts.finish`.

    Single use. ``identity`` is None for an unknown or disabled account, whose keys are
    random so that :meth:`Accounts.finish` does the same work and fails the same way.
    """

    account: str
    client_first_bare: str
    server_first: str
    nonce: str
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    identity: Identity | None
    used: bool = False


class AuthError(WallctlError):
    code = "authentication_failed"


@dataclass
class _Record:
    account: str
    display_name: str
    role: Role
    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    created_ts: float
    updated_ts: float
    disabled: bool

    def identity(self) -> Identity:
        return Identity(self.account, self.role, self.display_name)

    def info(self) -> AccountInfo:
        return AccountInfo(self.identity(), self.disabled, self.created_ts, self.updated_ts)


_COLUMNS = (
    "account, display_name, role, salt, iterations, stored_key, server_key, "
    "created_ts, updated_ts, disabled"
)


def _record(row: tuple[Any, ...]) -> _Record:
    account, display, role, salt, iterations, stored, server, created, updated, disabled = row
    return _Record(
        account=str(account),
        display_name=str(display),
        role=Role(str(role)),
        salt=bytes(salt),
        iterations=int(iterations),
        stored_key=bytes(stored),
        server_key=bytes(server),
        created_ts=float(created),
        updated_ts=float(updated),
        disabled=bool(disabled),
    )


def _key(account: str) -> str:
    # Only ASCII letters have case in the allowed set; matches SQLite's NOCASE.
    return account.lower()


# --- SCRAM math ---------------------------------------------------------------------------


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.digest(key, msg, "sha256")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict standard base64 (padding required, no whitespace); ValueError otherwise."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def _verifier(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey); SaltedPassword and ClientKey never leave this function."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key")


def scram_auth_message(
    account: str, client_nonce: str, salt_b64: str, iterations: int, nonce: str
) -> str:
    """The AuthMessage both sides sign, built from the exchange's parts."""
    return f"n={account},r={client_nonce},r={nonce},s={salt_b64},i={iterations},c=biws,r={nonce}"


def scram_client_proof(
    password: str, salt_b64: str, iterations: int, auth_message: str
) -> tuple[str, str]:
    """The client's side: (ClientProof, the ServerSignature to expect), both base64.

    A client must compare the server's signature with the expected one (in constant
    time) before trusting the server.
    """
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8"), base64.b64decode(salt_b64), iterations
    )
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    msg = auth_message.encode("utf-8")
    signature = _hmac(stored_key, msg)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_signature = _hmac(_hmac(salted, b"Server Key"), msg)
    return _b64(proof), _b64(server_signature)


# --- validation -----------------------------------------------------------------------------


def validate_account_name(account: object) -> str:
    """``account`` if it is a well-formed name; InvalidField (not echoing it) otherwise."""
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise InvalidField(
            "account name must be 1-64 characters: letters, digits, CJK ideographs and "
            "_ . @ -, starting with a letter, digit or ideograph",
            field="account",
        )
    return account


def _validate_new_name(account: str) -> str:
    validate_account_name(account)
    if _key(account) in RESERVED_NAMES:
        raise InvalidField(f"account name {account!r} is reserved", field="account")
    return account


def _validate_password(password: object) -> str:
    if not isinstance(password, str):
        raise InvalidField("password must be text", field="password")
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidField(
            f"password must be {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters",
            field="password",
        )
    # Control characters are typing accidents (a pasted newline); lone surrogates cannot
    # be encoded as the UTF-8 the client will hash.
    if not password.isprintable():
        raise InvalidField("password must not contain control characters", field="password")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidField("password is not valid Unicode text", field="password") from None
    return password


def _validate_display_name(display_name: object, account: str) -> str:
    if not isinstance(display_name, str):
        raise InvalidField("display name must be text", field="display_name")
    name = display_name.strip()
    if len(name) > MAX_DISPLAY_NAME_CHARS or not name.isprintable():
        raise InvalidField(
            f"display name must be at most {MAX_DISPLAY_NAME_CHARS} printable characters",
            field="display_name",
        )
    return name or account


def _validate_role(role: object) -> Role:
    # A Role is a str, so members and their values both pass.
    if isinstance(role, str) and role in _RANK:
        return Role(role)
    raise InvalidField("role must be one of " + ", ".join(r.value for r in Role), field="role")


def _nonce_ok(nonce: object) -> bool:
    return (
        isinstance(nonce, str)
        and MIN_NONCE_CHARS <= len(nonce) <= MAX_NONCE_CHARS
        and all("\x21" <= c <= "\x7e" and c not in ",=" for c in nonce)
    )


# --- store jobs -------------------------------------------------------------------------------
# They return an outcome rather than raise: Store.write_sync cannot carry an exception back.

_Outcome = Literal["ok", "missing", "exists", "last_admin"]


def _revoke_tokens(conn: sqlite3.Connection, account: str) -> None:
    # API session tokens (wallctl/api/tokens.py) end with the account, its password and
    # its enabled state: in the same transaction, so no window remains where one works.
    conn.execute("DELETE FROM api_tokens WHERE account = ?", (account,))


def _other_enabled_admins(conn: sqlite3.Connection, account: str) -> int:
    (n,) = conn.execute(
        "SELECT COUNT(*) FROM accounts WHERE role = ? AND disabled = 0 AND account != ?",
        (Role.ADMIN.value, account),
    ).fetchone()
    return int(n)


def _is_enabled_admin(conn: sqlite3.Connection, account: str) -> bool:
    row = conn.execute(
        "SELECT role, disabled FROM accounts WHERE account = ?", (account,)
    ).fetchone()
    return row is not None and row[0] == Role.ADMIN.value and not row[1]


def _add_job(rec: _Record, actor: Actor) -> Callable[[sqlite3.Connection], _Outcome]:
    def job(conn: sqlite3.Connection) -> _Outcome:
        cur = conn.execute(
            f"INSERT INTO accounts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account) DO NOTHING",
            (
                rec.account,
                rec.display_name,
                rec.role.value,
                rec.salt,
                rec.iterations,
                rec.stored_key,
                rec.server_key,
                rec.created_ts,
                rec.updated_ts,
                int(rec.disabled),
            ),
        )
        if cur.rowcount == 0:
            return "exists"
        detail = {"account": rec.account, "role": rec.role.value, "display_name": rec.display_name}
        _insert_audit(conn, rec.created_ts, actor, "account.add", None, None, "ok", detail)
        return "ok"

    return job


def _remove_job(account: str, actor: Actor, ts: float) -> Callable[[sqlite3.Connection], _Outcome]:
    def job(conn: sqlite3.Connection) -> _Outcome:
        if _is_enabled_admin(conn, account) and _other_enabled_admins(conn, account) == 0:
            return "last_admin"
        cur = conn.execute("DELETE FROM accounts WHERE account = ?", (account,))
        if cur.rowcount == 0:
            return "missing"
        _revoke_tokens(conn, account)
        _insert_audit(conn, ts, actor, "account.remove", None, None, "ok", {"account": account})
        return "ok"

    return job


def _passwd_job(
    account: str, salt: bytes, iterations: int, keys: tuple[bytes, bytes], actor: Actor, ts: float
) -> Callable[[sqlite3.Connection], _Outcome]:
    def job(conn: sqlite3.Connection) -> _Outcome:
        cur = conn.execute(
            "UPDATE accounts SET salt = ?, iterations = ?, stored_key = ?, server_key = ?, "
            "updated_ts = ? WHERE account = ?",
            (salt, iterations, keys[0], keys[1], ts, account),
        )
        if cur.rowcount == 0:
            return "missing"
        _revoke_tokens(conn, account)
        detail = {"account": account, "iterations": iterations}
        _insert_audit(conn, ts, actor, "account.passwd", None, None, "ok", detail)
        return "ok"

    return job


def _role_job(
    account: str, role: Role, actor: Actor, ts: float
) -> Callable[[sqlite3.Connection], _Outcome]:
    def job(conn: sqlite3.Connection) -> _Outcome:
        if (
            role != Role.ADMIN
            and _is_enabled_admin(conn, account)
            and _other_enabled_admins(conn, account) == 0
        ):
            return "last_admin"
        cur = conn.execute(
            "UPDATE accounts SET role = ?, updated_ts = ? WHERE account = ?",
            (role.value, ts, account),
        )
        if cur.rowcount == 0:
            return "missing"
        detail = {"account": account, "role": role.value}
        _insert_audit(conn, ts, actor, "account.role", None, None, "ok", detail)
        return "ok"

    return job


def _disable_job(
    account: str, disabled: bool, actor: Actor, ts: float
) -> Callable[[sqlite3.Connection], _Outcome]:
    def job(conn: sqlite3.Connection) -> _Outcome:
        if (
            disabled
            and _is_enabled_admin(conn, account)
            and _other_enabled_admins(conn, account) == 0
        ):
            return "last_admin"
        cur = conn.execute(
            "UPDATE accounts SET disabled = ?, updated_ts = ? WHERE account = ?",
            (int(disabled), ts, account),
        )
        if cur.rowcount == 0:
            return "missing"
        if disabled:
            _revoke_tokens(conn, account)
        action = "account.disable" if disabled else "account.enable"
        _insert_audit(conn, ts, actor, action, None, None, "ok", {"account": account})
        return "ok"

    return job


def _read_all(conn: sqlite3.Connection) -> list[_Record]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY account").fetchall()
    return [_record(r) for r in rows]


def _read_one(conn: sqlite3.Connection, account: str) -> _Record | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE account = ?", (account,)).fetchone()
    return None if row is None else _record(row)


def _secret_job(conn: sqlite3.Connection) -> bytes:
    conn.execute(
        "INSERT INTO auth_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (_SECRET_NAME, secrets.token_bytes(32)),
    )
    (value,) = conn.execute(
        "SELECT value FROM auth_secrets WHERE name = ?", (_SECRET_NAME,)
    ).fetchone()
    return bytes(value)


def _raise_for(outcome: _Outcome, account: str) -> None:
    if outcome == "missing":
        raise NotFound(f"account {account!r} not found", field="account")
    if outcome == "exists":
        raise Conflict(f"account {account!r} already exists", field="account")
    if outcome == "last_admin":
        raise Conflict(
            f"account {account!r} is the last enabled admin: add another admin first",
            field="account",
        )


# --- the service ------------------------------------------------------------------------------


class Accounts:
    def __init__(self, store: Store, *, iterations: int = DEFAULT_ITERATIONS) -> None:
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ValueError(
                f"SCRAM iterations must be {MIN_ITERATIONS}-{MAX_ITERATIONS}, not {iterations}"
            )
        self.store = store
        self.iterations = iterations
        self._records: dict[str, _Record] = {}
        self._secret: bytes | None = None
        self._lookup: sqlite3.Connection | None = None

    # --- loading -----------------------------------------------------------------------

    def _load_sync(self) -> None:
        records = self.store.read_sync(_read_all)
        # The secret is created once per database and kept, so a fake salt stays the same
        # across restarts just as a real one does.
        if self._secret is None:
            self._secret = self.store.write_sync(_secret_job)
        self._records = {_key(r.account): r for r in records}

    async def load(self) -> None:
        await asyncio.to_thread(self._load_sync)

    def close(self) -> None:
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None

    def _fresh(self, account: str) -> _Record | None:
        """The account's row as the database has it now; the cached one if unreadable."""
        key = _key(account)
        try:
            if self._lookup is None:
                uri = self.store.path.resolve().as_uri() + "?mode=ro"
                self._lookup = sqlite3.connect(
                    uri, uri=True, timeout=_LOOKUP_TIMEOUT_S, check_same_thread=False
                )
            rec = _read_one(self._lookup, account)
        except sqlite3.Error as e:
            log.warning("account lookup failed, using cached copy", reason=str(e))
            return self._records.get(key)
        if rec is None:
            self._records.pop(key, None)
        else:
            self._records[key] = rec
        return rec

    # --- SCRAM ---------------------------------------------------------------------------

    def begin(self, account: str, client_nonce: str) -> tuple[ScramChallenge, ScramState]:
        if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
            raise AuthError(MALFORMED_ACCOUNT, field="account")
        if not _nonce_ok(client_nonce):
            raise AuthError(MALFORMED_NONCE, field="nonce")
        if self._secret is None:
            self._load_sync()
        assert self._secret is not None

        rec = self._fresh(account)
        nonce = client_nonce + _b64(secrets.token_bytes(SERVER_NONCE_BYTES))
        identity: Identity | None
        if rec is not None and not rec.disabled:
            salt, iterations = rec.salt, rec.iterations
            stored_key, server_key = rec.stored_key, rec.server_key
            identity = rec.identity()
        else:
            # Same shape as a real challenge, and the same salt every time for this name.
            mac = _hmac(self._secret, b"wallctl fake salt\0" + _key(account).encode("utf-8"))
            salt, iterations = mac[:SALT_BYTES], self.iterations
            stored_key, server_key = secrets.token_bytes(32), secrets.token_bytes(32)
            identity = None
        challenge = ScramChallenge(_b64(salt), iterations, nonce)
        state = ScramState(
            account=account,
            client_first_bare=f"n={account},r={client_nonce}",
            server_first=f"r={nonce},s={challenge.salt},i={iterations}",
            nonce=nonce,
            stored_key=stored_key,
            server_key=server_key,
            identity=identity,
        )
        return challenge, state

    def finish(self, state: ScramState, client_proof_b64: str) -> tuple[Identity, str]:
        # One proof per challenge: a replayed or retried proof is refused.
        if state.used:
            raise AuthError(AUTH_FAILED)
        state.used = True
        try:
            proof = _b64decode(client_proof_b64)
        except ValueError:
            raise AuthError(MALFORMED_PROOF, field="proof") from None
        if len(proof) != hashlib.sha256().digest_size:
            raise AuthError(MALFORMED_PROOF, field="proof")
        auth_message = (
            f"{state.client_first_bare},{state.server_first},c=biws,r={state.nonce}"
        ).encode()
        signature = _hmac(state.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        matches = hmac.compare_digest(hashlib.sha256(client_key).digest(), state.stored_key)
        if not matches or state.identity is None:
            raise AuthError(AUTH_FAILED)
        return state.identity, _b64(_hmac(state.server_key, auth_message))

    # --- reading -------------------------------------------------------------------------

    def list(self) -> list[Identity]:
        """Enabled accounts, from memory."""
        recs = sorted(self._records.values(), key=lambda r: _key(r.account))
        return [r.identity() for r in recs if not r.disabled]

    def get(self, account: str) -> Identity | None:
        """The identity to act as, from memory; None when unknown or disabled."""
        rec = self._records.get(_key(account)) if isinstance(account, str) else None
        return None if rec is None or rec.disabled else rec.identity()

    def current(self, account: str) -> Identity | None:
        """The identity as the database has it now (for a token login); None when the
        account is unknown or disabled. One primary-key read, like :meth:`begin`'s."""
        if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
            return None
        rec = self._fresh(account)
        return None if rec is None or rec.disabled else rec.identity()

    def list_sync(self) -> builtins.list[Identity]:
        """Enabled accounts, read from the database (for the CLI)."""
        return [i.identity for i in self.info_sync() if not i.disabled]

    def info_sync(self) -> builtins.list[AccountInfo]:
        """Every account, disabled ones included, read from the database."""
        return [r.info() for r in self.store.read_sync(_read_all)]

    # --- changing ------------------------------------------------------------------------

    def _new_record(self, account: str, password: str, role: Role, display_name: str) -> _Record:
        _validate_new_name(account)
        _validate_password(password)
        role = _validate_role(role)
        display = _validate_display_name(display_name, account)
        salt = secrets.token_bytes(SALT_BYTES)
        stored_key, server_key = _verifier(password, salt, self.iterations)
        now = time.time()
        return _Record(
            account, display, role, salt, self.iterations, stored_key, server_key, now, now, False
        )

    def _existing(self, account: str) -> str:
        """The stored spelling of ``account`` (names match ignoring ASCII case)."""
        validate_account_name(account)
        rec = self.store.read_sync(lambda c: _read_one(c, account))
        if rec is None:
            raise NotFound(f"account {account!r} not found", field="account")
        return rec.account

    def _refresh(self, account: str) -> None:
        rec = self.store.read_sync(lambda c: _read_one(c, account))
        if rec is None:
            self._records.pop(_key(account), None)
        else:
            self._records[_key(account)] = rec

    def add_sync(
        self,
        account: str,
        password: str,
        role: Role,
        display_name: str = "",
        actor: Actor = SYSTEM,
    ) -> Identity:
        rec = self._new_record(account, password, role, display_name)
        _raise_for(self.store.write_sync(_add_job(rec, actor)), account)
        self._records[_key(account)] = rec
        return rec.identity()

    async def add(
        self,
        account: str,
        password: str,
        role: Role,
        display_name: str = "",
        actor: Actor = SYSTEM,
    ) -> Identity:
        # PBKDF2 takes milliseconds: off the loop.
        rec = await asyncio.to_thread(self._new_record, account, password, role, display_name)
        _raise_for(await self.store.write(_add_job(rec, actor)), account)
        self._records[_key(account)] = rec
        return rec.identity()

    def remove_sync(self, account: str, actor: Actor = SYSTEM) -> bool:
        validate_account_name(account)
        outcome = self.store.write_sync(_remove_job(account, actor, time.time()))
        if outcome == "missing":
            return False
        _raise_for(outcome, account)
        self._records.pop(_key(account), None)
        return True

    async def remove(self, account: str, actor: Actor = SYSTEM) -> bool:
        validate_account_name(account)
        outcome = await self.store.write(_remove_job(account, actor, time.time()))
        if outcome == "missing":
            return False
        _raise_for(outcome, account)
        self._records.pop(_key(account), None)
        return True

    def _passwd_job(
        self, account: str, password: str, actor: Actor
    ) -> Callable[[sqlite3.Connection], _Outcome]:
        validate_account_name(account)
        _validate_password(password)
        salt = secrets.token_bytes(SALT_BYTES)
        keys = _verifier(password, salt, self.iterations)
        return _passwd_job(account, salt, self.iterations, keys, actor, time.time())

    def passwd_sync(self, account: str, password: str, actor: Actor = SYSTEM) -> None:
        job = self._passwd_job(account, password, actor)
        _raise_for(self.store.write_sync(job), account)
        self._refresh(account)

    async def passwd(self, account: str, password: str, actor: Actor = SYSTEM) -> None:
        job = await asyncio.to_thread(self._passwd_job, account, password, actor)
        _raise_for(await self.store.write(job), account)
        await asyncio.to_thread(self._refresh, account)

    def set_role_sync(self, account: str, role: Role, actor: Actor = SYSTEM) -> Identity:
        validate_account_name(account)
        job = _role_job(account, _validate_role(role), actor, time.time())
        _raise_for(self.store.write_sync(job), account)
        self._refresh(account)
        return self._records[_key(account)].identity()

    async def set_role(self, account: str, role: Role, actor: Actor = SYSTEM) -> Identity:
        validate_account_name(account)
        job = _role_job(account, _validate_role(role), actor, time.time())
        _raise_for(await self.store.write(job), account)
        await asyncio.to_thread(self._refresh, account)
        return self._records[_key(account)].identity()

    def set_disabled_sync(self, account: str, disabled: bool, actor: Actor = SYSTEM) -> None:
        validate_account_name(account)
        job = _disable_job(account, disabled, actor, time.time())
        _raise_for(self.store.write_sync(job), account)
        self._refresh(account)

    async def set_disabled(self, account: str, disabled: bool, actor: Actor = SYSTEM) -> None:
        validate_account_name(account)
        job = _disable_job(account, disabled, actor, time.time())
        _raise_for(await self.store.write(job), account)
        await asyncio.to_thread(self._refresh, account)

    # --- first start -----------------------------------------------------------------------

    async def ensure_bootstrap(self, password_file: Path) -> str | None:
        """With no account at all, create ``admin`` and write its password to a 0600 file.

        Returns the file's path, or None when accounts already exist. The file is written
        before the account, so an admin is never created whose password nobody holds.
        """
        count = await self.store.read(
            lambda c: c.execute("SELECT COUNT(*) FROM accounts").fetchone()
        )
        if count[0]:
            return None
        password = secrets.token_urlsafe(24)
        await asyncio.to_thread(_write_secret_file, password_file, password + "\n")
        try:
            await self.add("admin", password, Role.ADMIN, "Administrator", SYSTEM)
        except Conflict:
            # Someone (the CLI) added it meanwhile; our password is not the one in force.
            await asyncio.to_thread(password_file.unlink, True)
            return None
        return str(password_file)


def _write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        # O_CREAT's mode does not apply to a leftover file from an earlier crash.
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
