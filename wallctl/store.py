"""Durable state: SQLite in WAL mode, written by one thread with group commit.

Every wall revision is kept (so any past wall can be shown and put back), beside an
append-only audit log and the saved presets. Most revisions are stored as a patch against
the one before (the windows that changed, the ids that went, the order when it changed);
every ``SNAPSHOT_EVERY``-th revision, the first of a wall and any written without its
predecessor at hand are stored whole, so rebuilding a past wall reads at most that many
rows. A move of one window then writes a few hundred bytes instead of the whole wall.

A change is acknowledged only after the transaction holding it has committed; changes
that arrive while a commit is under way share the next one, so durability costs one
fsync per burst, not per change.

Where the commit happens depends on the durability:

- ``full`` (synchronous=FULL: every COMMIT fsyncs the WAL): the writes of one event-loop
  iteration reach the writer thread as one hand-over, and their answers come back as
  one wake-up of the loop; the loop never waits for the disk.
- ``normal`` (synchronous=NORMAL: a COMMIT appends to the WAL in the page cache and
  never fsyncs; only checkpoints do, in their own thread): the writes of one loop
  iteration are committed by the loop itself, in one transaction, at the start of the
  next iteration. Such a commit takes tens of microseconds; handing it to a thread cost
  more than that in thread wake-ups and GIL hand-overs, per request. Writes from other
  threads (``write_sync``) still go through the writer thread; one lock keeps the two
  from sharing a transaction.

Reads run in a worker thread on a second connection (WAL lets them run beside writes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import orjson

from wallctl.logs import get_logger
from wallctl.redact import is_secret_key, redact, redact_value
from wallctl.wallstate import WallState, Window, replaced_index, state_data, window_data

T = TypeVar("T")
log = get_logger("wallctl.store")

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
    # 3: revisions stored as patches against the revision before (patch = 1); rows of
    # version 2 are whole states (patch = 0), and stay readable as they are.
    """
    ALTER TABLE revisions ADD COLUMN patch INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX revisions_snapshots ON revisions (wall, revision) WHERE patch = 0;
    """,
    # 4: API session tokens (wallctl/api/tokens.py): only their SHA-256 is kept.
    """
    CREATE TABLE api_tokens (
        token_hash BLOB NOT NULL PRIMARY KEY,
        account TEXT NOT NULL COLLATE NOCASE,
        session TEXT NOT NULL,
        created_ts REAL NOT NULL,
        expires_ts REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX api_tokens_by_account ON api_tokens (account);
    """,
    # 5: mobile terminals (wallctl/terminals/identities.py: only the SHA-256 of each
    # bearer token is kept) and the index of their recorded segments (wallctl/recordings/).
    """
    CREATE TABLE terminals (
        id TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
        name TEXT NOT NULL,
        token_hash BLOB NOT NULL UNIQUE,
        created_ts REAL NOT NULL,
        created_by TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        identity TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        start_ts REAL NOT NULL,
        end_ts REAL,
        bytes INTEGER NOT NULL DEFAULT 0,
        codecs TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'open'
    );
    CREATE INDEX recordings_by_source ON recordings (source, start_ts);
    CREATE INDEX recordings_by_identity ON recordings (identity, start_ts);
    CREATE INDEX recordings_by_time ON recordings (start_ts);
    """,
]

# How long a statement waits for another connection's lock before failing; the event
# loop's own commits (durability "normal") give up sooner and hand over to the writer.
BUSY_TIMEOUT_MS = 10000
LOOP_BUSY_TIMEOUT_MS = 20
# A loop commit slower than this is logged: a commit usually takes well under 1 ms.
LOOP_STALL_WARN_S = 0.05

# A whole state every this many revisions bounds the patches applied to rebuild one.
SNAPSHOT_EVERY = 64

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
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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


class _RevisionRows(NamedTuple):
    """A new revision with its audit row, prepared on the caller's thread.

    The writer inserts a run of these with one statement per table: the Python it does
    per revision is a comparison. A NamedTuple: made once per change, and cheaper to make
    than a frozen dataclass.
    """

    wall: str
    revision: int
    row: tuple[Any, ...]
    audit: tuple[Any, ...]


_Work = Callable[[sqlite3.Connection], Any] | _RevisionRows
_Job = tuple[_Work, asyncio.Future[Any] | None, asyncio.AbstractEventLoop | None]
_Settlement = tuple[asyncio.Future[Any], Any, BaseException | None]
_Result = tuple[_Job, Any, BaseException | None]

_INSERT_REVISION = (
    "INSERT INTO revisions (wall, revision, ts, actor, action, state, patch) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_AUDIT = (
    "INSERT INTO audit (ts, actor, session, via, origin, action, wall, revision, result, "
    "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


# Rows per multi-row INSERT: 10 columns x 256 rows stays far below SQLite's limit of bound
# parameters (32766 since 3.32; Debian 12 has 3.40).
_ROWS_PER_INSERT = 256


@functools.lru_cache(maxsize=64)
def _rows_sql(insert: str, columns: int, rows: int) -> str:
    """``insert`` (one row of ``columns`` values) made to insert ``rows`` rows at once."""
    head = insert[: insert.index(" VALUES ")]
    one = "(" + ", ".join("?" * columns) + ")"
    return f"{head} VALUES {', '.join([one] * rows)}"


class _Writer(threading.Thread):
    """The one thread that writes. Jobs queued while it commits share the next commit.

    The queue carries lists of jobs (one list per event-loop iteration, or one job from
    ``write_sync``), so a burst of requests wakes this thread once, not once per job.
    """

    MAX_GROUP = 256

    def __init__(self, conn: sqlite3.Connection, checkpointer: _Checkpointer) -> None:
        super().__init__(name="wallctl-store-writer", daemon=True)
        self.conn = conn
        self.checkpointer = checkpointer
        self.jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        # Held for each transaction, whichever thread runs it (see transact).
        self.lock = threading.Lock()
        self._busy_ms = BUSY_TIMEOUT_MS
        self.commits = 0
        self.jobs_done = 0
        # The newest stored revision of each wall as far as this thread knows; emptied
        # when a transaction is rolled back whole.
        self.last_revision: dict[str, int] = {}

    def run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            group = list(first)
            stop = False
            while len(group) < self.MAX_GROUP:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.extend(nxt)
            for i in range(0, len(group), self.MAX_GROUP):
                _dispatch(self.transact(group[i : i + self.MAX_GROUP]))
            if stop:
                return

    def transact(self, group: list[_Job]) -> list[_Result]:
        """Run ``group`` in one transaction and commit it; each job's outcome.

        Called by this thread; the event loop's thread uses ``try_transact``. ``lock``
        keeps one transaction at a time on the connection.
        """
        with self.lock:
            self._busy_timeout(BUSY_TIMEOUT_MS)
            return self._transact(group, begun=False)

    def try_transact(self, group: list[_Job]) -> list[_Result] | None:
        """``transact`` for the event loop's thread, which must not wait long: None when
        this thread holds the connection or another process holds the database's write
        lock for more than ``LOOP_BUSY_TIMEOUT_MS`` (a CLI command writing, say); the
        caller then hands the group to this thread, which waits as long as it takes."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            self._busy_timeout(LOOP_BUSY_TIMEOUT_MS)
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                # Busy (or failing: then the writer thread reports it to every job).
                return None
            return self._transact(group, begun=True)
        finally:
            self.lock.release()

    def _busy_timeout(self, ms: int) -> None:
        # Switched only when the other thread wrote last: rare in the daemon.
        if self._busy_ms != ms:
            self.conn.execute(f"PRAGMA busy_timeout={ms}")
            self._busy_ms = ms

    def _transact(self, group: list[_Job], begun: bool) -> list[_Result]:
        results: list[_Result] = []
        conn = self.conn
        try:
            if not begun:
                conn.execute("BEGIN IMMEDIATE")
            i = 0
            while i < len(group):
                if isinstance(group[i][0], _RevisionRows):
                    j = i + 1
                    while j < len(group) and isinstance(group[j][0], _RevisionRows):
                        j += 1
                    results += self._revisions(group[i:j])
                    i = j
                else:
                    results.append(self._one(group[i]))
                    i += 1
            conn.execute("COMMIT")
            self.commits += 1
            self.jobs_done += len(group)
            if self.commits % _Checkpointer.EVERY_COMMITS == 0:
                self.checkpointer.wake.set()
        except Exception as e:
            # sqlite3.Error from BEGIN, COMMIT or a run of revisions (jobs' own errors
            # are theirs, see _one): nothing of the group was written.
            if conn.in_transaction:
                # A failing disk may refuse the rollback too: the writer must live on.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self.last_revision.clear()
            failure = StoreError(f"the state database could not commit: {e}")
            results = [(job, None, failure) for job in group]
        return results

    def _one(self, job: _Job) -> _Result:
        """Run one job in a savepoint, so its failure undoes only its own writes."""
        conn = self.conn
        conn.execute("SAVEPOINT job")
        work = job[0]
        try:
            if isinstance(work, _RevisionRows):
                self._insert(work)
                value = None
            else:
                value = work(conn)
        except Exception as e:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return (job, None, e)
        conn.execute("RELEASE job")
        return (job, value, None)

    def _next_ok(self, rows: _RevisionRows, last: dict[str, int]) -> StoreError | None:
        known = last.get(rows.wall)
        if known is None:
            known = self.last_revision.get(rows.wall)
        if known is None:
            (known,) = self.conn.execute(
                "SELECT COALESCE(MAX(revision), 0) FROM revisions WHERE wall = ?", (rows.wall,)
            ).fetchone()
        if rows.revision != known + 1:
            last[rows.wall] = known
            return StoreError(
                f"wall {rows.wall!r} revision {rows.revision} does not follow {known}"
            )
        last[rows.wall] = rows.revision
        return None

    def _insert(self, rows: _RevisionRows) -> None:
        last: dict[str, int] = {}
        error = self._next_ok(rows, last)
        if error is not None:
            raise error
        self.conn.execute(_INSERT_REVISION, rows.row)
        self.conn.execute(_INSERT_AUDIT, rows.audit)
        # Last, so a failed insert leaves the cache as the rollback leaves the table.
        self.last_revision.update(last)

    def _revisions(self, run: list[_Job]) -> list[_Result]:
        """A run of new revisions: checked in order, then two executemany."""
        last: dict[str, int] = {}
        results: list[_Result] = []
        accepted: list[_RevisionRows] = []
        for job in run:
            rows = job[0]
            assert isinstance(rows, _RevisionRows)
            error = self._next_ok(rows, last)
            results.append((job, None, error))
            if error is None:
                accepted.append(rows)
        if not accepted:
            return results
        conn = self.conn
        conn.execute("SAVEPOINT run")
        try:
            # One statement per table for the whole run: the sqlite3 module lets go of
            # the GIL around every step, and taking it back while the event loop holds it
            # costs a forced thread switch. executemany would step once per row.
            for i in range(0, len(accepted), _ROWS_PER_INSERT):
                chunk = accepted[i : i + _ROWS_PER_INSERT]
                conn.execute(
                    _rows_sql(_INSERT_REVISION, 7, len(chunk)),
                    [v for r in chunk for v in r.row],
                )
                conn.execute(
                    _rows_sql(_INSERT_AUDIT, 10, len(chunk)),
                    [v for r in chunk for v in r.audit],
                )
        except sqlite3.Error:
            # Some row broke a constraint: find which, one savepoint each (rare).
            conn.execute("ROLLBACK TO run")
            conn.execute("RELEASE run")
            return [self._one(job) for job in run]
        conn.execute("RELEASE run")
        self.last_revision.update(last)
        return results


class _Checkpointer(threading.Thread):
    """Copies the WAL back into the database file beside the writer, not inside it.

    SQLite's automatic checkpoint runs in the COMMIT that crosses its threshold, so every
    few hundred commits one group of requests waited for the copy and its fsync (the p99
    of the API). Here the writer only nudges this thread; a PASSIVE checkpoint never
    blocks the writer. Should the WAL still grow past ``TRUNCATE_PAGES`` (a checkpoint
    that could never catch up under load), a TRUNCATE checkpoint resets it.
    """

    EVERY_COMMITS = 100
    TRUNCATE_PAGES = 16384  # 64 MiB of 4 KiB pages

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(name="wallctl-store-checkpoint", daemon=True)
        self.conn = conn
        self.wake = threading.Event()
        self.stopping = False
        self.checkpoints = 0

    def run(self) -> None:
        while True:
            self.wake.wait(timeout=5.0)
            self.wake.clear()
            if self.stopping:
                return
            try:
                _, log_pages, _ = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if log_pages >= self.TRUNCATE_PAGES:
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                self.checkpoints += 1
            except sqlite3.Error as e:
                # Busy or failing disk: the writer's commits go on; try again later.
                log.warning("state database checkpoint failed", error=str(e))


class _CallNow:
    """Stands in for a loop when a thread waits on a concurrent Future (write_sync)."""

    @staticmethod
    def call_soon_threadsafe(fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)


_CALL_NOW = _CallNow()


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _dispatch(results: list[_Result]) -> None:
    """Hand the outcomes of a transaction run by the writer thread to their loops.

    One wake-up per loop for the whole group, not one per job.
    """
    by_loop: dict[int, tuple[Any, list[_Settlement]]] = {}
    for (_, fut, loop), value, exc in results:
        if fut is not None and loop is not None:
            by_loop.setdefault(id(loop), (loop, []))[1].append((fut, value, exc))
    for loop, settlements in by_loop.values():
        try:
            loop.call_soon_threadsafe(_settle_all, settlements)
        except RuntimeError:
            # That loop is closed: nobody waits for these answers any more.
            pass


def _settle_all(settlements: list[_Settlement]) -> None:
    for fut, value, exc in settlements:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


# --- revisions as patches -------------------------------------------------------------------


def state_patch(old: WallState, new: WallState) -> dict[str, Any]:
    """What turns ``old`` into ``new``: changed or added windows, removed ids, order.

    Edits keep the Window objects they did not touch, so an identity test finds the
    changed ones without comparing fields. ``order`` is given only when the ids do not
    come out in ``new``'s order by keeping the old order and appending new windows.
    """
    base: dict[str, Any] = {"layout": new.layout, "next_window": new.next_window}
    ow, nw = old.windows, new.windows
    i = replaced_index(ow, nw)
    if i is not None:
        # Made by replacing one window (a move, a resize...): nothing to compare.
        return {"set": [window_data(nw[i])], "del": [], **base}
    if len(ow) == len(nw):
        # The common edit (move, resize, raise, source): windows replaced in place.
        pairs = [(o, n) for o, n in zip(ow, nw, strict=True) if o is not n]
        if all(o.id == n.id for o, n in pairs):
            return {"set": [window_data(n) for _, n in pairs], "del": [], **base}
    before = {w.id: w for w in ow}
    ids = [w.id for w in nw]
    kept = set(ids)
    changed = [window_data(w) for w in nw if before.get(w.id) is not w]
    removed = [i for i in before if i not in kept]
    patch: dict[str, Any] = {"set": changed, "del": removed, **base}
    expected = [i for i in before if i in kept] + [i for i in ids if i not in before]
    if expected != ids:
        patch["order"] = ids
    return patch


def apply_patch(state: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a WallState as JSON data) with ``patch`` applied; ``state`` is kept."""
    windows: dict[str, Any] = {w["id"]: w for w in state["windows"]}
    for i in patch["del"]:
        windows.pop(i, None)
    for w in patch["set"]:
        windows[w["id"]] = w
    order = patch.get("order")
    listed = list(windows.values()) if order is None else [windows[i] for i in order]
    return {
        **state,
        "windows": listed,
        "layout": patch["layout"],
        "next_window": patch["next_window"],
    }


def state_at(conn: sqlite3.Connection, wall: str, revision: int) -> WallState | None:
    """Revision ``revision`` of ``wall`` rebuilt from its last whole state and the patches
    after it; None when the store does not have it."""
    base = conn.execute(
        "SELECT revision, state FROM revisions WHERE wall = ? AND revision <= ? AND patch = 0 "
        "ORDER BY revision DESC LIMIT 1",
        (wall, revision),
    ).fetchone()
    if base is None:
        return None
    at, body = base
    data: dict[str, Any] = json.loads(body)
    if at != revision:
        rows = conn.execute(
            "SELECT revision, state FROM revisions WHERE wall = ? AND revision > ? "
            "AND revision <= ? ORDER BY revision",
            (wall, at, revision),
        ).fetchall()
        if not rows or rows[-1][0] != revision:
            return None
        for rev, patch in rows:
            if rev != at + 1:
                raise StoreError(f"wall {wall!r}: revision {at + 1} is missing from the store")
            data = apply_patch(data, json.loads(patch))
            at = rev
        data["revision"] = revision
    return WallState.model_validate(data)


class Store:
    def __init__(self, path: Path, durability: Literal["full", "normal"] = "full") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        writer_conn = _connect(path, durability)
        migrate(writer_conn)
        # Checkpoints run in their own thread (_Checkpointer), not in the writer's COMMIT.
        writer_conn.execute("PRAGMA wal_autocheckpoint=0")
        self._reader = _connect(path, durability)
        self._read_lock = threading.Lock()
        self._checkpointer = _Checkpointer(_connect(path, durability))
        self._checkpointer.start()
        self._writer = _Writer(writer_conn, self._checkpointer)
        self._writer.start()
        self.durability = durability
        # A COMMIT that never waits for the disk is run by the event loop (module doc).
        self._commit_on_loop = durability == "normal"
        # Non-zero while jobs the loop handed to the writer thread are unanswered.
        self._handed_over = 0
        # Loop commits slower than LOOP_STALL_WARN_S: when last said, the worst since.
        self._stall_warned = -60.0
        self._worst_stall = 0.0
        self._closed = False
        # Jobs of the current loop iteration, handed to the writer together.
        self._batch: list[_Job] = []
        self._batch_loop: asyncio.AbstractEventLoop | None = None
        self._batch_lock = threading.Lock()

    # --- plumbing --------------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group commit; return once it is durable."""
        return await self._enqueue(fn)  # type: ignore[no-any-return]

    def _enqueue(self, fn: _Work) -> asyncio.Future[Any]:
        """Add ``fn`` to this loop iteration's group; the future settles after COMMIT.

        A plain function, not a coroutine: one frame less to create and resume per write.
        """
        if self._closed:
            raise StoreError("the state store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        # Uncontended in the daemon (one loop); it keeps a second loop's thread safe.
        with self._batch_lock:
            if self._batch and self._batch_loop is not loop:
                self._flush_locked()
            if not self._batch:
                self._batch_loop = loop
                loop.call_soon(self._flush, loop)
            self._batch.append((fn, fut, loop))
        return fut

    def _flush(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        with self._batch_lock:
            if not (self._commit_on_loop and self._batch and self._batch_loop is loop):
                self._flush_locked()
                return
            batch, self._batch = self._batch, []
        assert loop is not None
        # Called back on ``loop`` (see _enqueue), whose batch this is: commit it here and
        # settle its futures without a thread hop (their tasks resume in the next
        # iteration).
        writer = self._writer
        for i in range(0, len(batch), _Writer.MAX_GROUP):
            group = batch[i : i + _Writer.MAX_GROUP]
            began = time.perf_counter()
            results = None if self._handed_over else writer.try_transact(group)
            if results is None:
                self._hand_over(group + batch[i + _Writer.MAX_GROUP :], loop)
                return
            self._check_stall(time.perf_counter() - began, len(group))
            settle: list[_Settlement] = []
            for (_, fut, _), value, exc in results:
                if fut is not None:
                    settle.append((fut, value, exc))
            _settle_all(settle)

    def _check_stall(self, seconds: float, jobs: int) -> None:
        """Say so when a commit held the event loop up: the disk stalled (another
        process flooding it, a failing drive). Every client waits meanwhile; at most one
        warning a minute, with the worst commit since the last one."""
        if seconds < LOOP_STALL_WARN_S:
            return
        self._worst_stall = max(self._worst_stall, seconds)
        now = time.monotonic()
        if now - self._stall_warned >= 60.0:
            log.warning(
                "state database commit held the event loop",
                ms=round(self._worst_stall * 1000, 1),
                jobs=jobs,
                durability=self.durability,
            )
            self._stall_warned = now
            self._worst_stall = 0.0

    def _hand_over(self, jobs: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        """Busy: let the writer thread wait for the database instead of the loop.

        Until it has answered these jobs, later ones follow them through the thread:
        commits and answers stay in the order the changes were made. A no-op job after
        them says when: its future's callback runs after their tasks were woken.
        """
        self._handed_over += 1
        mark = self._handed_over
        done: asyncio.Future[Any] = loop.create_future()
        done.add_done_callback(lambda f: self._taken_back(mark, f))
        self._writer.jobs.put([*jobs, (_nothing, done, loop)])

    def _taken_back(self, mark: int, done: asyncio.Future[Any]) -> None:
        if not done.cancelled():
            # A failed commit failed the jobs before it too; they report it.
            done.exception()
        if mark == self._handed_over:
            self._handed_over = 0

    def _flush_locked(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._writer.jobs.put(batch)

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """For the CLI and tests, which have no loop: one job, one commit."""
        return self._submit_sync(fn)  # type: ignore[no-any-return]

    def _submit_sync(self, fn: _Work) -> Any:
        if self._closed:
            raise StoreError("the state store is closed")
        # Settled by the writer after COMMIT (not when ``fn`` returns), with ``fn``'s own
        # exception or the commit's failure, exactly as ``write`` is.
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._writer.jobs.put([(fn, fut, _CALL_NOW)])  # type: ignore[list-item]
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
        self._flush()
        self._writer.jobs.put(None)
        self._writer.join(timeout=10)
        self._checkpointer.stopping = True
        self._checkpointer.wake.set()
        self._checkpointer.join(timeout=10)
        self._checkpointer.conn.close()
        self._writer.conn.close()
        self._reader.close()

    @property
    def commits(self) -> int:
        return self._writer.commits

    @property
    def checkpoints(self) -> int:
        return self._checkpointer.checkpoints

    # --- wall revisions ----------------------------------------------------------------

    def load_current(self) -> dict[str, WallState]:
        def q(conn: sqlite3.Connection) -> dict[str, WallState]:
            rows = conn.execute(
                "SELECT wall, MAX(revision) FROM revisions GROUP BY wall"
            ).fetchall()
            out = {}
            for wall, rev in rows:
                st = state_at(conn, wall, rev)
                if st is None:
                    raise StoreError(f"wall {wall!r}: revision {rev} cannot be rebuilt")
                out[wall] = st
            return out

        return self.read_sync(q)

    @staticmethod
    def _revision_rows(
        state: WallState,
        previous: WallState | None,
        actor: Actor,
        action: str,
        detail: dict[str, Any],
        ts: float,
    ) -> _RevisionRows:
        wall = state.wall
        if (
            previous is not None
            and previous.wall == wall
            and previous.revision == state.revision - 1
            and previous.revision > 0
            and state.revision % SNAPSHOT_EVERY
        ):
            body, patch = _json(state_patch(previous, state)), 1
        else:
            body, patch = _json(state_data(state)), 0
        return _RevisionRows(
            wall,
            state.revision,
            (wall, state.revision, ts, actor.identity, action, body, patch),
            _audit_row(ts, actor, action, wall, state.revision, "ok", detail),
        )

    async def commit_revision(
        self,
        state: WallState,
        actor: Actor,
        action: str,
        detail: dict[str, Any],
        previous: WallState | None = None,
    ) -> float:
        """Store ``state`` as its wall's next revision; return once it is durable.

        ``previous`` is the revision before it as stored: then only the patch is written.
        A revision that does not follow the stored one is refused (StoreError).
        """
        ts = time.time()
        await self._enqueue(self._revision_rows(state, previous, actor, action, detail, ts))
        return ts

    def commit_revision_sync(
        self,
        state: WallState,
        actor: Actor,
        action: str,
        detail: dict[str, Any],
        previous: WallState | None = None,
    ) -> float:
        ts = time.time()
        self._submit_sync(self._revision_rows(state, previous, actor, action, detail, ts))
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
        return self.read_sync(lambda c: state_at(c, wall, revision))

    def revision_at(self, wall: str, ts: float) -> WallState | None:
        """The wall as it stood at ``ts``: the last revision made at or before it."""

        def q(c: sqlite3.Connection) -> WallState | None:
            row = c.execute(
                "SELECT revision FROM revisions WHERE wall = ? AND ts <= ? "
                "ORDER BY revision DESC LIMIT 1",
                (wall, ts),
            ).fetchone()
            return None if row is None else state_at(c, wall, row[0])

        return self.read_sync(q)

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


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # Integers over 64 bits, which orjson refuses: json writes them.
        return json.dumps(value, ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return is_secret_key(key)


@functools.lru_cache(maxsize=4096)
def _redact_text(text: str) -> str:
    return redact(text)


def _redacted(detail: dict[str, Any]) -> Any:
    """``redact_value("detail", detail)``, with a fast path for the flat details of wall
    edits: window ids and numbers, whose keys and strings repeat and are cached."""
    out: dict[str, Any] = {}
    for k, v in detail.items():
        if type(k) is not str or _secret_key(k):
            return redact_value("detail", detail)
        t = type(v)
        if t in _PLAIN:
            out[k] = v
        elif t is str and len(v) <= 64:
            out[k] = _redact_text(v)
        else:
            return redact_value("detail", detail)
    return out


# Values a detail holds as they are (exact types: a subclass takes the general path).
_PLAIN = frozenset((type(None), bool, int, float))


def _audit_row(
    ts: float,
    actor: Actor,
    action: str,
    wall: str | None,
    revision: int | None,
    result: str,
    detail: dict[str, Any],
) -> tuple[Any, ...]:
    return (
        ts,
        actor.identity,
        actor.session,
        actor.via,
        actor.origin,
        action,
        wall,
        revision,
        result,
        _json(_redacted(detail)),
    )


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
    conn.execute(_INSERT_AUDIT, _audit_row(ts, actor, action, wall, revision, result, detail))
