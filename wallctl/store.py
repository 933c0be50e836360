"""Durable state: SQLite in WAL mode, written by one thread with group commit.

Every wall revision is kept whole (so any past wall can be shown and put back), beside an
append-only audit log and the saved presets. A change is acknowledged only after the
transaction holding it has committed; changes that arrive while a commit is under way
share the next one, so durability costs one fsync per burst, not per change.

All SQLite work happens off the event loop: writes in the writer thread, reads in a
worker thread on a second connection (WAL lets them run side by side).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from wallctl.redact import redact_value
from wallctl.wallstate import WallState, Window

T = TypeVar("T")

# Each entry moves the schema from version i to i + 1. Never edit a shipped entry: add one.
MIGRATIONS: list[str] = [
    # 1: walls' revisions, audit log, presets.
    """
    CREATE TABLE revisions (
        wall TEXT NOT NULL,
        revision INTEGER NOT NULL,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (wall, revision)
    ) WITHOUT ROWID;
    CREATE INDEX revisions_by_time ON revisions (wall, ts);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        session TEXT,
        via TEXT NOT NULL,
        origin TEXT,
        action TEXT NOT NULL,
        wall TEXT,
        revision INTEGER,
        result TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit (ts);
    CREATE TABLE presets (
        wall TEXT NOT NULL,
        name TEXT NOT NULL,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        windows TEXT NOT NULL,
        PRIMARY KEY (wall, name)
    ) WITHOUT ROWID;
    """,
    # 2: accounts with SCRAM-SHA-256 verifiers (wallctl/accounts.py), and the server's
    # own secret that derives fake challenges for unknown accounts.
    """
    CREATE TABLE accounts (
        account TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL,
        salt BLOB NOT NULL,
        iterations INTEGER NOT NULL,
        stored_key BLOB NOT NULL,
        server_key BLOB NOT NULL,
        created_ts REAL NOT NULL,
        updated_ts REAL NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE auth_secrets (
        name TEXT NOT NULL PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    pass


@dataclass(frozen=True)
class Actor:
    """Who asked for a change, and through which face of the daemon."""

    identity: str
    via: str = "system"  # api, mqtt, cli, federation, system
    session: str | None = None
    # The centre a federated command came from, when it did not start here.
    origin: str | None = None
    role: str | None = None


SYSTEM = Actor("system")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    session: str | None
    via: str
    origin: str | None
    action: str
    wall: str | None
    revision: int | None
    result: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class RevisionInfo:
    wall: str
    revision: int
    ts: float
    actor: str
    action: str


@dataclass(frozen=True)
class Preset:
    wall: str
    name: str
    ts: float
    actor: str
    windows: tuple[Window, ...]


def _connect(path: Path, durability: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL survives power loss; NORMAL only a crash of the process (FIELD-NOTES).
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; refuse a database written by a newer wallctl."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the state database has schema version {version}, newer than this wallctl's "
            f"{SCHEMA_VERSION}: upgrade wallctl or restore an older database"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return int(version)


_Job = tuple[
    Callable[[sqlite3.Connection], Any],
    asyncio.Future[Any] | None,
    asyncio.AbstractEventLoop | None,
]


class _Writer(threading.Thread):
    """The one thread that writes. Jobs queued while it commits share the next commit."""

    MAX_GROUP = 256

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(name="wallctl-store-writer", daemon=True)
        self.conn = conn
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.commits = 0
        self.jobs_done = 0

    def run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self.MAX_GROUP:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Job]) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for job in group:
                fn = job[0]
                self.conn.execute("SAVEPOINT job")
                try:
                    value = fn(self.conn)
                except Exception as e:
                    self.conn.execute("ROLLBACK TO job")
                    self.conn.execute("RELEASE job")
                    results.append((job, None, e))
                else:
                    self.conn.execute("RELEASE job")
                    results.append((job, value, None))
            self.conn.execute("COMMIT")
            self.commits += 1
            self.jobs_done += len(group)
        except sqlite3.Error as e:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            failure = StoreError(f"the state database could not commit: {e}")
            results = [(job, None, failure) for job in group]
        for (_, fut, loop), value, exc in results:
            if fut is not None and loop is not None:
                loop.call_soon_threadsafe(_settle, fut, value, exc)


class _CallNow:
    """Stands in for a loop when a thread waits on a concurrent Future (write_sync)."""

    @staticmethod
    def call_soon_threadsafe(fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)


_CALL_NOW = _CallNow()


def _settle(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


class Store:
    def __init__(self, path: Path, durability: Literal["full", "normal"] = "full") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        writer_conn = _connect(path, durability)
        migrate(writer_conn)
        self._reader = _connect(path, durability)
        self._read_lock = threading.Lock()
        self._writer = _Writer(writer_conn)
        self._writer.start()
        self._closed = False

    # --- plumbing --------------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group commit; return once it is durable."""
        if self._closed:
            raise StoreError("the state store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._writer.jobs.put((fn, fut, loop))
        return await fut

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """For the CLI and tests, which have no loop: one job, one commit."""
        if self._closed:
            raise StoreError("the state store is closed")
        # Settled by the writer after COMMIT (not when ``fn`` returns), with ``fn``'s own
        # exception or the commit's failure, exactly as ``write`` is.
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._writer.jobs.put((fn, fut, _CALL_NOW))  # type: ignore[arg-type]
        return fut.result()

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._read_lock:
            return fn(self._reader)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.read_sync, fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.jobs.put(None)
        self._writer.join(timeout=10)
        self._writer.conn.close()
        self._reader.close()

    @property
    def commits(self) -> int:
        return self._writer.commits

    # --- wall revisions ----------------------------------------------------------------

    def load_current(self) -> dict[str, WallState]:
        def q(conn: sqlite3.Connection) -> dict[str, WallState]:
            rows = conn.execute(
                "SELECT r.wall, r.state FROM revisions r JOIN "
                "(SELECT wall, MAX(revision) AS rev FROM revisions GROUP BY wall) m "
                "ON r.wall = m.wall AND r.revision = m.rev"
            ).fetchall()
            return {wall: WallState.model_validate_json(state) for wall, state in rows}

        return self.read_sync(q)

    @staticmethod
    def _insert_revision(
        conn: sqlite3.Connection,
        state: WallState,
        actor: Actor,
        action: str,
        detail: dict[str, Any],
        ts: float,
    ) -> None:
        (last,) = conn.execute(
            "SELECT COALESCE(MAX(revision), 0) FROM revisions WHERE wall = ?", (state.wall,)
        ).fetchone()
        if state.revision != last + 1:
            raise StoreError(
                f"wall {state.wall!r} revision {state.revision} does not follow {last}"
            )
        conn.execute(
            "INSERT INTO revisions (wall, revision, ts, actor, action, state) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (state.wall, state.revision, ts, actor.identity, action, state.model_dump_json()),
        )
        _insert_audit(conn, ts, actor, action, state.wall, state.revision, "ok", detail)

    async def commit_revision(
        self, state: WallState, actor: Actor, action: str, detail: dict[str, Any]
    ) -> float:
        ts = time.time()
        await self.write(lambda c: self._insert_revision(c, state, actor, action, detail, ts))
        return ts

    def commit_revision_sync(
        self, state: WallState, actor: Actor, action: str, detail: dict[str, Any]
    ) -> float:
        ts = time.time()
        self.write_sync(lambda c: self._insert_revision(c, state, actor, action, detail, ts))
        return ts

    def history(
        self,
        wall: str,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RevisionInfo]:
        """Newest first."""
        sql = "SELECT wall, revision, ts, actor, action FROM revisions WHERE wall = ?"
        args: list[Any] = [wall]
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        if until is not None:
            sql += " AND ts <= ?"
            args.append(until)
        sql += " ORDER BY revision DESC LIMIT ?"
        args.append(limit)
        return self.read_sync(
            lambda c: [RevisionInfo(*row) for row in c.execute(sql, args).fetchall()]
        )

    def revision(self, wall: str, revision: int) -> WallState | None:
        row = self.read_sync(
            lambda c: c.execute(
                "SELECT state FROM revisions WHERE wall = ? AND revision = ?", (wall, revision)
            ).fetchone()
        )
        return None if row is None else WallState.model_validate_json(row[0])

    def revision_at(self, wall: str, ts: float) -> WallState | None:
        """The wall as it stood at ``ts``: the last revision made at or before it."""
        row = self.read_sync(
            lambda c: c.execute(
                "SELECT state FROM revisions WHERE wall = ? AND ts <= ? "
                "ORDER BY revision DESC LIMIT 1",
                (wall, ts),
            ).fetchone()
        )
        return None if row is None else WallState.model_validate_json(row[0])

    # --- audit ---------------------------------------------------------------------------

    async def audit(
        self,
        actor: Actor,
        action: str,
        *,
        wall: str | None = None,
        revision: int | None = None,
        result: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record something that changed no wall (a login, a device call, a preset)."""
        ts = time.time()
        await self.write(
            lambda c: _insert_audit(c, ts, actor, action, wall, revision, result, detail or {})
        )

    def audit_log(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        wall: str | None = None,
        actor: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first."""
        sql = "SELECT * FROM audit WHERE 1 = 1"
        args: list[Any] = []
        for col, op, val in (
            ("ts", ">=", since),
            ("ts", "<=", until),
            ("wall", "=", wall),
            ("actor", "=", actor),
        ):
            if val is not None:
                sql += f" AND {col} {op} ?"
                args.append(val)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)

        def q(c: sqlite3.Connection) -> list[AuditEntry]:
            out = []
            for row in c.execute(sql, args).fetchall():
                rid, ts, who, session, via, origin, action, wall, rev, result, detail = row
                out.append(
                    AuditEntry(
                        rid,
                        ts,
                        who,
                        session,
                        via,
                        origin,
                        action,
                        wall,
                        rev,
                        result,
                        json.loads(detail),
                    )
                )
            return out

        return self.read_sync(q)

    # --- presets -------------------------------------------------------------------------

    async def save_preset(
        self, wall: str, name: str, windows: tuple[Window, ...], actor: Actor
    ) -> None:
        ts = time.time()
        body = json.dumps([w.model_dump(mode="json") for w in windows], ensure_ascii=False)

        def job(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO presets (wall, name, ts, actor, windows) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (wall, name) DO UPDATE SET ts = excluded.ts, "
                "actor = excluded.actor, windows = excluded.windows",
                (wall, name, ts, actor.identity, body),
            )
            _insert_audit(c, ts, actor, "layout.save", wall, None, "ok", {"name": name})

        await self.write(job)

    async def delete_preset(self, wall: str, name: str, actor: Actor) -> bool:
        ts = time.time()

        def job(c: sqlite3.Connection) -> bool:
            cur = c.execute("DELETE FROM presets WHERE wall = ? AND name = ?", (wall, name))
            if cur.rowcount:
                _insert_audit(c, ts, actor, "layout.delete", wall, None, "ok", {"name": name})
            return cur.rowcount > 0

        return await self.write(job)

    def presets(self, wall: str) -> list[Preset]:
        def q(c: sqlite3.Connection) -> list[Preset]:
            rows = c.execute(
                "SELECT wall, name, ts, actor, windows FROM presets WHERE wall = ? ORDER BY name",
                (wall,),
            ).fetchall()
            return [
                Preset(w, n, ts, a, tuple(Window.model_validate(x) for x in json.loads(body)))
                for w, n, ts, a, body in rows
            ]

        return self.read_sync(q)

    def preset(self, wall: str, name: str) -> Preset | None:
        for p in self.presets(wall):
            if p.name == name:
                return p
        return None

    def integrity_check(self) -> str:
        return str(self.read_sync(lambda c: c.execute("PRAGMA integrity_check").fetchone()[0]))


def _insert_audit(
    conn: sqlite3.Connection,
    ts: float,
    actor: Actor,
    action: str,
    wall: str | None,
    revision: int | None,
    result: str,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        "INSERT INTO audit "
        "(ts, actor, session, via, origin, action, wall, revision, result, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ts,
            actor.identity,
            actor.session,
            actor.via,
            actor.origin,
            action,
            wall,
            revision,
            result,
            json.dumps(redact_value("detail", detail), ensure_ascii=False, default=str),
        ),
    )
