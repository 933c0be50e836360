"""Durable state: SQLite in WAL mode, written by one thread with group commit.

Every wall revision is kept (so any past wall can be shown and put back), beside an
append-only audit log and the saved presets. Most revisions are stored as a patch against
the one before (the windows that changed, the ids that went, the order when it changed);
every ``SNAPSHOT_EVERY``-th revision, the first of a wall and any written without its
predecessor at hand are stored whole, so rebuilding a past wall reads at most that many
rows. A move of one window then writes a few hundred bytes instead of the whole wall.

A change is acknowledged only once it is durable as the durability promises:

- ``full`` (synchronous=FULL: every COMMIT fsyncs the WAL) survives a power loss. The
  writes of one event-loop iteration reach the writer thread as one hand-over, share one
  transaction (changes that arrive while a commit is under way share the next one, so
  durability costs one fsync per burst, not per change), and their answers come back as
  one wake-up of the loop; the loop never waits for the disk.
- ``normal`` survives the death of the process; a power loss may cost the last moments.
  New wall revisions (the hot path: every window move) are appended to the *revision
  journal*, ``<database>-revlog`` (record format: wallctl/revlog.py), with one
  ``os.write`` per event-loop iteration, and acknowledged at once: the bytes are in the
  page cache, which outlives the process, just as a synchronous=NORMAL COMMIT is. The
  loop checks that each revision follows the one before (kept in memory), so a refused
  revision is refused exactly as the database would. Every ``INGEST_DELAY_S`` (sooner
  past ``INGEST_AT_ROWS`` rows) the journaled rows go to the writer thread, which
  inserts them into SQLite in one transaction per hand-over, off the loop; once all of
  the journal is in the database and it has grown past ``TRUNCATE_AT_BYTES`` (and at
  close) it is cut back to nothing. A SQLite transaction per loop iteration (BEGIN, two
  INSERTs, a COMMIT writing a few WAL frames) cost the loop ~20 us per window move
  under load; the append costs ~2, and the big transactions of the writer cost less per
  row than the small ones did. (Letting the loop insert the journaled rows itself, in
  the same big groups, measured no cheaper in the daemon and stalls the loop: the
  writer thread does it.) Reads (``read_sync``, ``read`` and the methods built on them)
  first wait until the writer has taken in every journaled row, so a read sees every
  acknowledged write.
  Other writes (``write``: audit, presets, accounts...) are committed by the loop itself
  in one transaction per iteration while the journal is fully taken in, else handed to
  the writer thread behind the journaled rows, so they keep their order.

  The process that owns the state directory replays the journal when it opens the
  store: every record up to the first torn or damaged one, each revision inserted only
  if the database lacks it (and its audit row only then), then the journal is emptied.
  An flock on the journal makes sure only one Store of one process appends to and
  replays it; a second Store on the same database (or one opened with
  ``journal=False``, as the CLI's read commands do beside a running daemon) leaves it
  alone and commits on the loop as the journal's predecessor did.

Reads run in a worker thread on a second connection (WAL lets them run beside writes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import functools
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import orjson

from wallctl import revlog
from wallctl.component import Component, Health, Status
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

# The revision journal (durability "normal", module doc): the file beside the database
# (not "-journal", SQLite's own name), how long journaled rows wait for the writer thread,
# how many make it take them at once, and when a fully taken-in journal is emptied.
JOURNAL_SUFFIX = "-revlog"
INGEST_DELAY_S = 0.03
INGEST_AT_ROWS = 2000
TRUNCATE_AT_BYTES = 1 << 20
# How long a read waits for the writer to take in the journal before it gives up.
CATCH_UP_TIMEOUT_S = 10.0
# While the database refuses journaled rows, at most this much of the journal waits for
# it (in the file, and in memory for the retry); past it new revisions are refused.
MAX_BEHIND_BYTES = 256 * 1024 * 1024
# A failing ingest is tried again after this long, doubling up to the maximum.
INGEST_RETRY_S = 0.1
INGEST_RETRY_MAX_S = 5.0


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
# The row counts of those statements (largest first; 1 ends any run).
_CHUNK_SIZES = (_ROWS_PER_INSERT, 64, 16, 8, 4, 2, 1)


@functools.lru_cache(maxsize=64)
def _rows_sql(insert: str, columns: int, rows: int) -> str:
    """``insert`` (one row of ``columns`` values) made to insert ``rows`` rows at once."""
    head = insert[: insert.index(" VALUES ")]
    one = "(" + ", ".join("?" * columns) + ")"
    return f"{head} VALUES {', '.join([one] * rows)}"


class _Ingest(NamedTuple):
    """Journaled revisions for the writer to insert, and how far into the journal (bytes
    ever appended) they reach."""

    rows: list[_RevisionRows]
    end: int


class _Writer(threading.Thread):
    """The one thread that writes. Jobs queued while it commits share the next commit.

    The queue carries lists of jobs (one list per event-loop iteration, or one job from
    ``write_sync``), so a burst of requests wakes this thread once, not once per job; and
    journaled revisions to take in (``_Ingest``), gathered into one transaction per
    wake-up, ahead of the jobs that arrived with them.
    """

    MAX_GROUP = 256

    def __init__(self, conn: sqlite3.Connection, checkpointer: _Checkpointer) -> None:
        super().__init__(name="wallctl-store-writer", daemon=True)
        self.conn = conn
        self.checkpointer = checkpointer
        self.jobs: queue.SimpleQueue[list[_Job] | _Ingest | None] = queue.SimpleQueue()
        # Held for each transaction, whichever thread runs it (see transact).
        self.lock = threading.Lock()
        self._busy_ms = BUSY_TIMEOUT_MS
        self.commits = 0
        self.jobs_done = 0
        # The newest stored revision of each wall as far as this thread knows; emptied
        # when a transaction is rolled back whole.
        self.last_revision: dict[str, int] = {}
        # Journaled rows not yet in the database, oldest first (set by Store).
        self.journal: _Journal | None = None
        self.backlog: list[_RevisionRows] = []
        self.backlog_end = 0
        self.ingest_failures = 0
        self.retry_at = 0.0
        self._failure_said = -60.0

    def run(self) -> None:
        while True:
            if self.backlog:
                # A failed ingest waits for its retry, not for the next job.
                try:
                    first = self.jobs.get(timeout=max(0.0, self.retry_at - time.monotonic()))
                except queue.Empty:
                    first = []
            else:
                first = self.jobs.get()
            if first is None:
                self.ingest()
                return
            group: list[_Job] = []
            self._take(first, group)
            stop = False
            while len(group) < self.MAX_GROUP:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                self._take(nxt, group)
            if self.backlog and time.monotonic() >= self.retry_at:
                self.ingest()
            for i in range(0, len(group), self.MAX_GROUP):
                _dispatch(self.transact(group[i : i + self.MAX_GROUP]))
            if stop:
                if self.backlog:
                    self.ingest()
                return

    def _take(self, item: list[_Job] | _Ingest, group: list[_Job]) -> None:
        if isinstance(item, _Ingest):
            self.backlog += item.rows
            self.backlog_end = max(self.backlog_end, item.end)
        else:
            group.extend(item)

    def ingest(self) -> bool:
        """Insert the journaled backlog in one transaction; tell the journal after COMMIT.

        A failure keeps the backlog (the journal holds it anyway) for a retry with backoff.
        """
        rows = self.backlog
        if not rows:
            return True
        conn = self.conn
        with self.lock:
            self._busy_timeout(BUSY_TIMEOUT_MS)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _insert_rows(conn, rows)
                except sqlite3.IntegrityError:
                    # Some are there already (a replay by another opener of this
                    # database, say): insert only what is missing, exactly once. (No
                    # savepoint on the usual path: every statement there costs the event
                    # loop a hand-over of the GIL.)
                    conn.execute("ROLLBACK")
                    conn.execute("BEGIN IMMEDIATE")
                    refused = _insert_absent(
                        conn, [(r.wall, r.revision, r.row, r.audit) for r in rows]
                    )[2]
                    if refused:
                        log.error(
                            "journaled revisions refused by the database",
                            reasons="; ".join(refused[:5]),
                        )
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                self._ingest_failed(e)
                return False
            self.commits += 1
            if self.commits % _Checkpointer.EVERY_COMMITS == 0:
                self.checkpointer.wake.set()
        last = self.last_revision
        for r in rows:
            last[r.wall] = r.revision
        self.backlog = []
        if self.ingest_failures:
            log.warning("journaled revisions reached the database again", rows=len(rows))
            self.ingest_failures = 0
        if self.journal is not None:
            self.journal.ingested_to(self.backlog_end)
        return True

    def _ingest_failed(self, e: sqlite3.Error) -> None:
        self.ingest_failures += 1
        delay = min(INGEST_RETRY_S * 2 ** (self.ingest_failures - 1), INGEST_RETRY_MAX_S)
        self.retry_at = time.monotonic() + delay
        reason = f"the state database could not take in journaled revisions: {e}"
        now = time.monotonic()
        if now - self._failure_said >= 60.0:
            # The journal keeps them: nothing acknowledged is lost, reads wait or fail.
            log.error(
                "journaled revisions wait for the state database",
                error=str(e),
                rows=len(self.backlog),
                failures=self.ingest_failures,
                retry_s=round(delay, 2),
            )
            self._failure_said = now
        # After the log line: a reader woken by this may look for it.
        if self.journal is not None:
            self.journal.ingest_failed(reason)

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
            _insert_rows(conn, accepted)
        except sqlite3.Error:
            # Some row broke a constraint: find which, one savepoint each (rare).
            conn.execute("ROLLBACK TO run")
            conn.execute("RELEASE run")
            return [self._one(job) for job in run]
        conn.execute("RELEASE run")
        self.last_revision.update(last)
        return results


def _insert_rows(conn: sqlite3.Connection, rows: list[_RevisionRows]) -> None:
    """Insert ``rows`` (checked already) with a few statements.

    One statement per table for a whole run: the sqlite3 module lets go of the GIL around
    every step, and taking it back while the event loop holds it costs a forced thread
    switch. executemany would step once per row.
    """
    i = 0
    while i < len(rows):
        # A few statement sizes only: each size is a statement of its own for sqlite3's
        # statement cache (128 entries), and preparing one of 256 rows costs more than
        # running it. Groups from the loop are small; the journal's are hundreds.
        size = next(n for n in _CHUNK_SIZES if n <= len(rows) - i)
        chunk = rows[i : i + size]
        conn.execute(_rows_sql(_INSERT_REVISION, 7, size), [v for r in chunk for v in r.row])
        conn.execute(_rows_sql(_INSERT_AUDIT, 10, size), [v for r in chunk for v in r.audit])
        i += size


_Entry = tuple[str, int, tuple[Any, ...], tuple[Any, ...]]


def _insert_absent(conn: sqlite3.Connection, entries: list[_Entry]) -> tuple[int, int, list[str]]:
    """Insert the revisions (and their audit rows) of ``entries`` the database lacks.

    A revision the wall has already is skipped with its audit row (so each lands exactly
    once); one that does not follow the wall's newest is refused, and so is everything
    after it for that wall: a patch is only right against the revision it was made from.
    (inserted, skipped, refusals), inside the caller's transaction.
    """
    last: dict[str, int] = {}
    stopped: dict[str, int] = {}
    inserted = skipped = 0
    refused: list[str] = []
    for wall, revision, row, audit in entries:
        if wall in stopped:
            stopped[wall] += 1
            continue
        known = last.get(wall)
        if known is None:
            (known,) = conn.execute(
                "SELECT COALESCE(MAX(revision), 0) FROM revisions WHERE wall = ?", (wall,)
            ).fetchone()
        if revision <= known:
            skipped += 1
            last[wall] = known
            continue
        if revision != known + 1:
            refused.append(f"wall {wall!r} revision {revision} does not follow {known}")
            stopped[wall] = 1
            continue
        conn.execute(_INSERT_REVISION, row)
        conn.execute(_INSERT_AUDIT, audit)
        last[wall] = revision
        inserted += 1
    for wall, count in stopped.items():
        if count > 1:
            refused.append(f"wall {wall!r}: {count - 1} later revisions refused with it")
    return inserted, skipped, refused


class _Journal:
    """The open revision journal of a Store that owns it (module doc).

    ``lock`` serialises appends (the loop, or a thread's ``commit_revision_sync``) with
    hand-overs and the writer's truncation; ``progress`` tells readers how far the writer
    has taken the journal in. Positions (``written``, ``ingested``) count bytes ever
    appended, so they keep growing across truncations; ``size`` is the file's.
    """

    def __init__(self, path: Path, lock_fd: int, fd: int, last: dict[str, int]) -> None:
        self.path = path
        self.lock_fd = lock_fd
        self.fd: int | None = fd
        self.lock = threading.Lock()
        self.progress = threading.Condition(threading.Lock())
        # The newest journaled revision of each wall: the next must follow it.
        self.last = last
        self.size = 0
        self.written = 0
        self.ingested = 0
        # Journaled rows not yet handed to the writer thread.
        self.pending: list[_RevisionRows] = []
        self.timer: asyncio.TimerHandle | None = None
        self.timer_loop: asyncio.AbstractEventLoop | None = None
        # Why the writer could not take the journal in, while it cannot.
        self.failure: str | None = None
        self.records = 0
        self.write_failures = 0
        self.failure_said = -60.0
        self.truncations = 0

    def append(self, rows: list[_RevisionRows]) -> list[StoreError | None]:
        """Journal the revisions of ``rows`` that follow their wall's last, in one write.

        Each row's outcome: None (journaled: durable), or the StoreError that refuses it
        (not the next revision; or the write failed, which fails every row).
        """
        outcomes: list[StoreError | None] = []
        accepted: list[_RevisionRows] = []
        with self.lock:
            if self.failure is not None and self.written - self.ingested > MAX_BEHIND_BYTES:
                behind = StoreError(
                    f"{self.written - self.ingested} bytes of revisions wait for the state "
                    f"database, which refuses them: {self.failure}"
                )
                return [behind for _ in rows]
            last = self.last
            newer: dict[str, int] = {}
            for r in rows:
                known = newer.get(r.wall)
                if known is None:
                    known = last.get(r.wall, 0)
                if r.revision != known + 1:
                    outcomes.append(
                        StoreError(f"wall {r.wall!r} revision {r.revision} does not follow {known}")
                    )
                else:
                    newer[r.wall] = r.revision
                    accepted.append(r)
                    outcomes.append(None)
            if not accepted:
                return outcomes
            try:
                data = revlog.encode([(r.row, r.audit) for r in accepted])
                self._write(data)
            except (OSError, ValueError, TypeError) as e:
                # (RevlogError is a ValueError.)
                self.write_failures += 1
                failure = StoreError(f"the revision journal could not be written: {e}")
                now = time.monotonic()
                if now - self.failure_said >= 60.0:
                    # A full disk fails every loop iteration: once a minute, with a count.
                    log.error(
                        "revision journal write failed",
                        path=str(self.path),
                        error=str(e),
                        failures=self.write_failures,
                    )
                    self.failure_said = now
                return [failure for _ in rows]
            last.update(newer)
            self.size += len(data)
            self.written += len(data)
            self.records += 1
            self.pending += accepted
        return outcomes

    def _write(self, data: bytes) -> None:
        fd = self.fd if self.fd is not None else self._reopen()
        done = 0
        view = memoryview(data)
        try:
            while done < len(data):
                n = os.write(fd, view[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "the journal took no bytes")
                done += n
        except OSError:
            self._cut_back(fd)
            raise

    def _cut_back(self, fd: int) -> None:
        """Drop a partly written record, so the next one starts on a record boundary;
        when this descriptor cannot, open the file again (then the next append does)."""
        try:
            os.ftruncate(fd, self.size)
            return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.close(fd)
        self.fd = None
        with contextlib.suppress(OSError):
            self._reopen()

    def _reopen(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            # Whatever a failed append left behind goes before anything is appended.
            os.ftruncate(fd, self.size)
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        return fd

    def hand_over(self, jobs: queue.SimpleQueue[list[_Job] | _Ingest | None]) -> None:
        """Queue the journaled rows the writer thread has not been given yet. Under the
        lock, so hand-overs from two threads reach the writer in journal order."""
        with self.lock:
            if self.pending:
                rows, self.pending = self.pending, []
                jobs.put(_Ingest(rows, self.written))

    def behind(self) -> bool:
        """Whether journaled rows are not in the database yet."""
        return self.written != self.ingested

    def ingested_to(self, end: int) -> None:
        """Called by the writer after the COMMIT that took the journal in up to ``end``."""
        with self.progress:
            self.ingested = max(self.ingested, end)
            self.failure = None
            self.progress.notify_all()
        if self.size > TRUNCATE_AT_BYTES:
            self.truncate()

    def ingest_failed(self, reason: str) -> None:
        with self.progress:
            self.failure = reason
            self.progress.notify_all()

    def truncate(self) -> bool:
        """Empty the file when all of it is in the database (True when it is empty)."""
        with self.lock:
            if self.size == 0:
                return True
            if self.written != self.ingested or self.fd is None:
                return False
            try:
                os.ftruncate(self.fd, 0)
            except OSError as e:
                log.warning("revision journal could not be emptied", error=str(e))
                return False
            self.size = 0
            self.truncations += 1
            return True

    def wait(self, target: int, timeout: float) -> None:
        """Until the writer has taken the journal in up to ``target``; StoreError when it
        cannot (the database fails) or takes longer than ``timeout``."""
        with self.progress:
            self.progress.wait_for(
                lambda: self.ingested >= target or self.failure is not None, timeout
            )
            if self.ingested >= target:
                return
            reason = self.failure or f"the writer took longer than {timeout:g} s"
        raise StoreError(f"acknowledged revisions are not readable yet: {reason}")

    def close(self) -> None:
        for fd in (self.fd, self.lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = None


def _replay(conn: sqlite3.Connection, path: Path, data: bytes) -> None:
    """Put what the journal holds and the database lacks into the database (module doc)."""
    scan = revlog.scan(data)
    entries: list[_Entry] = [tuple(e) for rec in scan.records for e in rec.entries]  # type: ignore[misc]
    conn.execute("BEGIN IMMEDIATE")
    try:
        inserted, skipped, refused = _insert_absent(conn, entries)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    if scan.problem is not None or refused:
        # Evidence for whoever looks into it, before the journal is emptied.
        kept = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.rejected")
        try:
            kept.write_bytes(data)
        except OSError as e:
            kept = Path(f"(not kept: {e})")
        if scan.problem is not None:
            log.warning(
                "revision journal damaged: replayed up to the damage, ignored the rest",
                path=str(path),
                problem=scan.problem,
                ignored_bytes=len(data) - scan.good_end,
                copy=str(kept),
            )
        if refused:
            log.error(
                "revision journal entries refused at replay",
                path=str(path),
                reasons="; ".join(refused[:10]),
                copy=str(kept),
            )
    log.info(
        "revision journal replayed",
        path=str(path),
        records=len(scan.records),
        inserted=inserted,
        present=skipped,
    )


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
    """The state database of one state directory (module doc).

    ``journal=False`` opens it without touching the revision journal: no replay, no
    truncation, no appends (for readers beside the daemon that owns it, such as the CLI's
    read commands, which do not take the state directory's lock).
    """

    def __init__(
        self,
        path: Path,
        durability: Literal["full", "normal"] = "full",
        *,
        journal: bool = True,
    ) -> None:
        self.path = path
        self.journal_path = Path(f"{path}{JOURNAL_SUFFIX}")
        path.parent.mkdir(parents=True, exist_ok=True)
        writer_conn = _connect(path, durability)
        migrate(writer_conn)
        # Checkpoints run in their own thread (_Checkpointer), not in the writer's COMMIT.
        writer_conn.execute("PRAGMA wal_autocheckpoint=0")
        self._journal = (
            self._open_journal(writer_conn, append=durability == "normal") if journal else None
        )
        self._reader = _connect(path, durability)
        self._read_lock = threading.Lock()
        self._checkpointer = _Checkpointer(_connect(path, durability))
        self._checkpointer.start()
        self._writer = _Writer(writer_conn, self._checkpointer)
        self._writer.journal = self._journal
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

    def _open_journal(self, conn: sqlite3.Connection, *, append: bool) -> _Journal | None:
        """Replay a journal left behind, and keep it open to append to when ``append``.

        Only the Store holding the journal's flock does either: a second one on the same
        database (in this process or another) would replay rows the owner is about to
        insert and empty the file under its feet.
        """
        path = self.journal_path
        lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(
                    "revision journal in use by another store: committing directly", path=str(path)
                )
                os.close(lock_fd)
                return None
            data = path.read_bytes()
            if data:
                _replay(conn, path, data)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            os.ftruncate(fd, 0)
        except BaseException:
            os.close(lock_fd)
            raise
        if not append:
            os.close(fd)
            os.close(lock_fd)
            return None
        last = dict(conn.execute("SELECT wall, MAX(revision) FROM revisions GROUP BY wall"))
        return _Journal(path, lock_fd, fd, last)

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
        journal = self._journal
        if journal is not None:
            batch = self._journal_jobs(journal, batch, loop)
            if not batch:
                return
            if journal.behind():
                # Behind the journaled rows, not before them: writes keep their order.
                self._hand_to_writer(journal)
                self._hand_over(batch, loop)
                return
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
            journal = self._journal
            if journal is not None:
                batch = self._journal_jobs(journal, batch, None)
                self._hand_to_writer(journal)
            if batch:
                self._writer.jobs.put(batch)

    # --- the revision journal (durability "normal") ------------------------------------

    def _journal_jobs(
        self, journal: _Journal, batch: list[_Job], loop: asyncio.AbstractEventLoop | None
    ) -> list[_Job]:
        """Journal the new revisions of ``batch`` and answer them; the other jobs.

        ``loop``: the loop whose batch this is, when called on it (answers are settled
        here); None from elsewhere (answers go through each future's loop).
        """
        revisions: list[_Job] = []
        rest: list[_Job] = []
        for job in batch:
            (revisions if type(job[0]) is _RevisionRows else rest).append(job)
        if not revisions:
            return batch
        outcomes = journal.append([job[0] for job in revisions])  # type: ignore[misc]
        if loop is None:
            _dispatch([(job, None, exc) for job, exc in zip(revisions, outcomes, strict=True)])
            self._hand_to_writer(journal)
        else:
            _settle_all(
                [
                    (job[1], None, exc)
                    for job, exc in zip(revisions, outcomes, strict=True)
                    if job[1] is not None
                ]
            )
            if len(journal.pending) >= INGEST_AT_ROWS:
                self._hand_to_writer(journal)
            elif journal.pending and (journal.timer is None or journal.timer_loop is not loop):
                # (A timer of a loop that has gone away would never fire.)
                journal.timer = loop.call_later(INGEST_DELAY_S, self._ingest_due, journal)
                journal.timer_loop = loop
        return rest

    def _ingest_due(self, journal: _Journal) -> None:
        journal.timer = None
        self._hand_to_writer(journal)

    def _hand_to_writer(self, journal: _Journal) -> None:
        """Give the writer thread the journaled rows it has not been given yet."""
        journal.hand_over(self._writer.jobs)

    def _catch_up(self, journal: _Journal) -> None:
        """Return once every journaled revision is in the database (module doc).

        Runs on whichever thread reads, the loop's included: it hands the rows over
        itself and waits on a threading primitive, never on the loop.
        """
        if not journal.behind() or threading.current_thread() is self._writer:
            return
        # Read first: every row up to it is then either handed over already or now.
        target = journal.written
        self._hand_to_writer(journal)
        journal.wait(target, CATCH_UP_TIMEOUT_S)

    def health(self) -> Health:
        journal = self._journal
        if journal is not None and journal.failure is not None:
            behind = journal.written - journal.ingested
            return Health(
                Status.DEGRADED,
                f"{journal.failure}; {behind} bytes of acknowledged revisions wait in "
                f"{journal.path} (safe there; retrying)",
            )
        if journal is not None and journal.write_failures:
            return Health(
                Status.OK,
                f"{journal.write_failures} revision journal write(s) failed since start",
            )
        return Health(Status.OK, f"durability {self.durability}")

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """For the CLI and tests, which have no loop: one job, one commit."""
        return self._submit_sync(fn)  # type: ignore[no-any-return]

    def _submit_sync(self, fn: _Work) -> Any:
        if self._closed:
            raise StoreError("the state store is closed")
        # Settled by the writer after COMMIT (not when ``fn`` returns), with ``fn``'s own
        # exception or the commit's failure, exactly as ``write`` is.
        journal = self._journal
        if journal is not None and type(fn) is _RevisionRows:
            # Journaled like the loop's revisions: one authority on what follows what.
            (failure,) = journal.append([fn])
            self._hand_to_writer(journal)
            if failure is not None:
                raise failure
            return None
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._writer.jobs.put([(fn, fut, _CALL_NOW)])  # type: ignore[list-item]
        return fut.result()

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        journal = self._journal
        if journal is not None:
            self._catch_up(journal)
        with self._read_lock:
            return fn(self._reader)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.read_sync, fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._flush()
        journal = self._journal
        if journal is not None:
            if journal.timer is not None:
                journal.timer.cancel()
            self._hand_to_writer(journal)
        self._writer.jobs.put(None)
        self._writer.join(timeout=10)
        if journal is not None:
            # Emptied only when all of it is in the database: else the next open replays it.
            if not journal.truncate():
                log.warning(
                    "store closed with revisions only in its journal: the next open replays them",
                    path=str(journal.path),
                    bytes=journal.written - journal.ingested,
                )
            journal.close()
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
        ts, stored = self.commit_revision_nowait(state, actor, action, detail, previous)
        await stored
        return ts

    def commit_revision_nowait(
        self,
        state: WallState,
        actor: Actor,
        action: str,
        detail: dict[str, Any],
        previous: WallState | None = None,
    ) -> tuple[float, asyncio.Future[Any]]:
        """``commit_revision`` without waiting: the revision's time, and a future that is
        done once the revision is durable (or holds the StoreError that refused it)."""
        ts = time.time()
        return ts, self._enqueue(self._revision_rows(state, previous, actor, action, detail, ts))

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


class StoreComponent(Component):
    """The state store in the daemon's health: degraded while acknowledged revisions
    cannot reach the database (they wait, safe, in the journal)."""

    name = "store"

    def __init__(self, store: Store) -> None:
        self.store = store

    def health(self) -> Health:
        return self.store.health()


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
