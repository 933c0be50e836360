"""The state store: schema migrations, revisions, audit, presets and group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallctl.store import (
    SCHEMA_VERSION,
    SYSTEM,
    Actor,
    Store,
    StoreError,
    migrate,
)
from wallctl.wallstate import WallState, Window


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state" / "wallctl.db")
    yield s
    s.close()


def state(rev: int, wall: str = "main", x: int = 0) -> WallState:
    win = Window(id="w1", x=x, y=0, w=100, h=100, source="cam")
    return WallState(wall=wall, revision=rev, windows=(win,), next_window=2)


ALICE = Actor("alice", via="api", session="s1", role="operator")


# --- schema ----------------------------------------------------------------------------


def test_migrates_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "wallctl.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"revisions", "audit", "presets"} <= tables
    # Migrating again is a no-op that reports the version found.
    assert migrate(conn) == SCHEMA_VERSION
    conn.close()


def test_migrate_reports_the_version_it_started_from(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    assert migrate(conn) == 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "wallctl.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(info.value) == (
        f"the state database has schema version {SCHEMA_VERSION + 1}, newer than this "
        f"wallctl's {SCHEMA_VERSION}: upgrade wallctl or restore an older database"
    )


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.close()
    s.close()  # twice is fine
    with pytest.raises(StoreError, match=r"^the state store is closed$"):
        s.write_sync(lambda c: None)

    async def go() -> None:
        await s.write(lambda c: None)

    with pytest.raises(StoreError, match=r"^the state store is closed$"):
        asyncio.run(go())


# --- revisions --------------------------------------------------------------------------


async def test_revisions_history_and_revision_at(store: Store) -> None:
    stamps = []
    for rev in range(1, 6):
        stamps.append(
            await store.commit_revision(state(rev, x=rev), ALICE, "window.move", {"x": rev})
        )
        await asyncio.sleep(0.002)
    await store.commit_revision(state(1, wall="side"), SYSTEM, "layout.apply", {})

    assert store.revision("main", 3) == state(3, x=3)
    assert store.revision("main", 9) is None
    current = store.load_current()
    assert current == {"main": state(5, x=5), "side": state(1, wall="side")}

    hist = store.history("main")
    assert [h.revision for h in hist] == [5, 4, 3, 2, 1]
    assert {(h.wall, h.actor, h.action) for h in hist} == {("main", "alice", "window.move")}
    assert [h.revision for h in store.history("main", limit=2)] == [5, 4]
    assert [h.revision for h in store.history("main", since=stamps[2])] == [5, 4, 3]
    assert [h.revision for h in store.history("main", until=stamps[1])] == [2, 1]

    assert store.revision_at("main", stamps[2]) == state(3, x=3)
    assert store.revision_at("main", (stamps[2] + stamps[3]) / 2) == state(3, x=3)
    assert store.revision_at("main", stamps[0] - 1) is None
    assert store.revision_at("main", time.time() + 10) == state(5, x=5)


async def test_revision_gap_is_refused(store: Store) -> None:
    await store.commit_revision(state(1), SYSTEM, "a", {})
    with pytest.raises(StoreError) as info:
        await store.commit_revision(state(3), SYSTEM, "a", {})
    assert str(info.value) == "wall 'main' revision 3 does not follow 1"
    with pytest.raises(StoreError, match="revision 1 does not follow 1"):
        store.commit_revision_sync(state(1), SYSTEM, "a", {})
    # Nothing of the refused change was written, the audit included.
    assert [h.revision for h in store.history("main")] == [1]
    assert len(store.audit_log()) == 1
    store.commit_revision_sync(state(2), SYSTEM, "a", {})
    assert store.load_current()["main"].revision == 2


async def test_every_revision_is_audited(store: Store) -> None:
    await store.commit_revision(state(1), ALICE, "layout.apply", {"name": "2x2"})
    await store.audit(
        Actor("bob", via="mqtt", origin="city"),
        "device.call",
        result="error",
        detail={"password": "hunter2", "n": 1},
    )
    log = store.audit_log()
    assert [e.action for e in log] == ["device.call", "layout.apply"]
    bob, alice = log
    assert (alice.actor, alice.via, alice.session, alice.wall, alice.revision, alice.result) == (
        "alice",
        "api",
        "s1",
        "main",
        1,
        "ok",
    )
    assert alice.detail == {"name": "2x2"}
    assert (bob.actor, bob.via, bob.origin, bob.result, bob.wall) == (
        "bob",
        "mqtt",
        "city",
        "error",
        None,
    )
    # Secrets never reach the audit log.
    assert bob.detail["password"] != "hunter2"
    assert bob.detail["n"] == 1
    assert [e.actor for e in store.audit_log(actor="alice")] == ["alice"]
    assert [e.action for e in store.audit_log(wall="main")] == ["layout.apply"]
    assert store.audit_log(since=time.time() + 1) == []
    assert len(store.audit_log(limit=1)) == 1


async def test_presets(store: Store) -> None:
    wins = state(1).windows
    await store.save_preset("main", "早班", wins, ALICE)
    await store.save_preset("main", "a", (), ALICE)
    await store.save_preset("side", "other", wins, ALICE)
    assert [p.name for p in store.presets("main")] == ["a", "早班"]
    p = store.preset("main", "早班")
    assert p is not None and p.windows == wins and p.actor == "alice"
    moved = (wins[0].model_copy(update={"x": 50}),)
    await store.save_preset("main", "早班", moved, SYSTEM)  # overwrite
    p = store.preset("main", "早班")
    assert p is not None and p.windows == moved and p.actor == "system"
    assert await store.delete_preset("main", "早班", ALICE) is True
    assert await store.delete_preset("main", "早班", ALICE) is False
    assert store.preset("main", "早班") is None
    actions = [e.action for e in store.audit_log()]
    assert actions.count("layout.save") == 4 and actions.count("layout.delete") == 1


# --- group commit ---------------------------------------------------------------------------


async def test_concurrent_writes_share_commits(store: Store) -> None:
    n = 300
    before = store.commits

    def job(i: int):  # type: ignore[no-untyped-def]
        def fn(c: sqlite3.Connection) -> int:
            c.execute(
                "INSERT INTO audit (ts, actor, via, action, result, detail) "
                "VALUES (0, 't', 'test', 'x', 'ok', '{}')"
            )
            return i

        return fn

    results = await asyncio.gather(*(store.write(job(i)) for i in range(n)))
    assert results == list(range(n))
    commits = store.commits - before
    assert 1 <= commits < n / 2, commits
    assert store.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM audit").fetchone()[0]) == n


async def test_a_failing_job_does_not_fail_its_group(store: Store) -> None:
    gate = threading.Event()
    # Hold the writer so every job below lands in one group.
    blocker = asyncio.ensure_future(store.write(lambda c: gate.wait(5)))
    await asyncio.sleep(0.05)

    def insert(i: int, fail: bool):  # type: ignore[no-untyped-def]
        def fn(c: sqlite3.Connection) -> int:
            c.execute(
                "INSERT INTO audit (ts, actor, via, action, result, detail) "
                "VALUES (?, 't', 'test', 'x', 'ok', '{}')",
                (i,),
            )
            if fail:
                raise ValueError(f"job {i} failed")
            return i

        return fn

    futs = [asyncio.ensure_future(store.write(insert(i, i % 3 == 1))) for i in range(9)]
    await asyncio.sleep(0.05)
    commits_before = store.commits
    gate.set()
    results = await asyncio.gather(*futs, return_exceptions=True)
    await blocker
    for i, r in enumerate(results):
        if i % 3 == 1:
            assert isinstance(r, ValueError) and str(r) == f"job {i} failed"
        else:
            assert r == i
    # The blocker's group committed, then all nine shared one more commit.
    assert store.commits - commits_before <= 2
    rows = store.read_sync(lambda c: [r[0] for r in c.execute("SELECT ts FROM audit ORDER BY ts")])
    assert rows == [0, 2, 3, 5, 6, 8]


async def test_integrity_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    s = Store(path)
    await s.commit_revision(state(1), SYSTEM, "a", {})
    assert s.integrity_check() == "ok"
    s.close()
    s2 = Store(path)
    try:
        assert s2.load_current()["main"] == state(1)
    finally:
        s2.close()
