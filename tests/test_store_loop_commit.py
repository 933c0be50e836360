"""Durability "normal": the event loop commits its own writes, one transaction per loop
iteration, and hands them to the writer thread only while the database is busy (or
while journaled revisions wait to be taken in: they go behind them). New wall revisions
go to the revision journal instead (tests/test_store_journal.py).

Durability "full" keeps every COMMIT (and its fsync) in the writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallctl.store import LOOP_BUSY_TIMEOUT_MS, LOOP_STALL_WARN_S, SYSTEM, Store
from wallctl.wallstate import WallState, Window

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "helpers"))
from kill_writer import kill_writer  # noqa: E402


@pytest.fixture
def normal(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state" / "wallctl.db", "normal")
    yield s
    s.close()


def state(rev: int, x: int = 0) -> WallState:
    win = Window(id="w1", x=x, y=0, w=100, h=100)
    return WallState(wall="main", revision=rev, windows=(win,), next_window=2)


def audit_insert(tag: int, fail: bool = False):  # type: ignore[no-untyped-def]
    def job(c: sqlite3.Connection) -> tuple[int, str]:
        c.execute(
            "INSERT INTO audit (ts, actor, via, action, result, detail) "
            "VALUES (?, 't', 'test', 'x', 'ok', '{}')",
            (tag,),
        )
        if fail:
            raise ValueError(f"job {tag} failed")
        return tag, threading.current_thread().name

    return job


def stored_revisions(store: Store) -> list[int]:
    return store.read_sync(
        lambda c: [r[0] for r in c.execute("SELECT revision FROM revisions ORDER BY revision")]
    )


@pytest.mark.parametrize(
    ("durability", "synchronous", "thread"),
    [("normal", 1, threading.main_thread().name), ("full", 2, "wallctl-store-writer")],
)
async def test_who_commits_depends_on_the_durability(
    tmp_path: Path, durability: str, synchronous: int, thread: str
) -> None:
    store = Store(tmp_path / "db", durability)  # type: ignore[arg-type]
    try:
        (sync,) = store._writer.conn.execute("PRAGMA synchronous").fetchone()
        assert sync == synchronous
        assert await store.write(audit_insert(1)) == (1, thread)
    finally:
        store.close()


async def test_one_commit_per_loop_iteration(normal: Store) -> None:
    before = normal.commits
    results = await asyncio.gather(*(normal.write(audit_insert(i)) for i in range(300)))
    assert [r[0] for r in results] == list(range(300))
    # gather starts all 300 in one iteration: they share transactions of MAX_GROUP (256).
    assert normal.commits - before == 2
    count = normal.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM audit").fetchone()[0])
    assert count == 300


async def test_a_failing_job_fails_alone_on_the_loop(normal: Store) -> None:
    futs = [normal.write(audit_insert(i, fail=i % 3 == 1)) for i in range(9)]
    results = await asyncio.gather(*futs, return_exceptions=True)
    for i, r in enumerate(results):
        if i % 3 == 1:
            assert isinstance(r, ValueError) and str(r) == f"job {i} failed"
        else:
            assert r == (i, threading.main_thread().name)
    rows = normal.read_sync(lambda c: [r[0] for r in c.execute("SELECT ts FROM audit ORDER BY ts")])
    assert rows == [0, 2, 3, 5, 6, 8]


async def test_revisions_commit_on_the_loop_and_refuse_gaps(normal: Store) -> None:
    await asyncio.gather(
        *(
            normal.commit_revision(state(i, x=i), SYSTEM, "a", {}, state(i - 1, x=i - 1))
            for i in range(1, 6)
        )
    )
    assert stored_revisions(normal) == [1, 2, 3, 4, 5]
    with pytest.raises(Exception, match="revision 7 does not follow 5"):
        await normal.commit_revision(state(7), SYSTEM, "a", {})
    assert normal.load_current()["main"] == state(5, x=5)


async def test_a_busy_database_is_waited_for_by_the_writer_thread_not_the_loop(
    normal: Store,
) -> None:
    """Another process holds the write lock (a CLI command, a backup): the loop gives up
    after LOOP_BUSY_TIMEOUT_MS, the writer thread waits, and answers keep their order.
    New revisions do not wait at all: the journal has them, the writer takes them in
    once the lock is free."""
    other = sqlite3.connect(normal.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done: list[int] = []

    async def write(tag: int) -> None:
        assert (await normal.write(audit_insert(tag)))[0] == tag
        done.append(tag)

    stalls: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            stalls.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    first = [asyncio.create_task(write(t)) for t in (1, 2, 3)]
    await asyncio.sleep(0.5)
    # Made while the first three wait in the writer thread: they queue behind them.
    later = [asyncio.create_task(write(t)) for t in (4, 5)]
    # Revisions are acknowledged meanwhile: appended to the journal, not committed.
    for rev in (1, 2):
        await normal.commit_revision(state(rev, x=rev), SYSTEM, "a", {}, state(rev - 1))
    await asyncio.sleep(0.5)
    assert done == [] and normal.commits == 0
    assert normal.journal_path.stat().st_size > 0
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(asyncio.gather(*first, *later), 15)
    tick.cancel()
    assert done == [1, 2, 3, 4, 5]
    assert stored_revisions(normal) == [1, 2]
    # The loop waited for the lock once, briefly; never for the whole second (the bound
    # is generous: the machine is shared).
    assert max(stalls) < 0.6, max(stalls)
    assert max(stalls) >= LOOP_BUSY_TIMEOUT_MS / 1000 * 0.5
    # Once the thread has answered (and taken the journal in), the loop commits again.
    for _ in range(5):
        await asyncio.sleep(0)
    assert await normal.write(audit_insert(6)) == (6, threading.main_thread().name)


async def test_a_write_from_another_thread_shares_no_transaction(normal: Store) -> None:
    """write_sync from a worker thread runs in the writer thread; the loop's commits wait
    for it (one lock), and neither sees the other's half-done work."""
    gate = threading.Event()

    def slow(c: sqlite3.Connection) -> int:
        c.execute(
            "INSERT INTO audit (ts, actor, via, action, result, detail) "
            "VALUES (-1, 't', 'test', 'x', 'ok', '{}')"
        )
        gate.wait(5)
        raise ValueError("undo mine")

    worker = asyncio.ensure_future(asyncio.to_thread(normal.write_sync, slow))
    await asyncio.sleep(0.05)
    mine = asyncio.ensure_future(normal.write(audit_insert(7)))
    await asyncio.sleep(0.1)
    assert not mine.done()
    gate.set()
    with pytest.raises(ValueError, match="undo mine"):
        await worker
    assert (await mine)[0] == 7
    rows = normal.read_sync(lambda c: [r[0] for r in c.execute("SELECT ts FROM audit")])
    assert rows == [7]


async def test_a_commit_that_holds_the_loop_up_is_logged(
    normal: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wallctl.store")
    await normal.write(lambda c: time.sleep(0.001))
    assert not [r for r in caplog.records if "held the event loop" in r.getMessage()]
    for _ in range(2):
        await normal.write(lambda c: time.sleep(LOOP_STALL_WARN_S * 1.5))
    said = [r for r in caplog.records if "held the event loop" in r.getMessage()]
    # Once a minute at most: an operator sees it, the log is not flooded.
    assert len(said) == 1 and said[0].levelno == logging.WARNING


# --- kill -9 ----------------------------------------------------------------------------------


def _round(state_dir: Path, delay: float) -> int | None:
    return kill_writer(state_dir, delay, durability="normal").last_ack


def test_acknowledged_changes_survive_kill_9_with_normal_durability(tmp_path: Path) -> None:
    """Durability "normal" loses nothing acknowledged when the process dies (only a power
    loss may cost the last moments): what is acknowledged from the revision journal is in
    the database once the next open has replayed it (check_db opens a Store first)."""
    sys.path.insert(0, str(HERE))
    from test_durability import check_db

    rng = random.Random(20261123)
    state_dir = tmp_path / "state"
    last_ack: int | None = None
    for _ in range(6):
        ack = _round(state_dir, rng.uniform(0.05, 0.4))
        if ack is not None:
            assert last_ack is None or ack > last_ack
            last_ack = ack
        check_db(state_dir / "wallctl.db", last_ack)
    assert last_ack is not None and last_ack > 20
