"""The state store: schema migrations, revisions, audit, presets and group commit."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallctl.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SNAPSHOT_EVERY,
    SYSTEM,
    Actor,
    Store,
    StoreError,
    apply_patch,
    migrate,
    state_patch,
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


# --- revisions stored as patches --------------------------------------------------------

WALL_CFG = {
    "tiles": {
        "rows": 2,
        "cols": 2,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "width_px": 1920,
        "height_px": 1080,
    }
}


async def test_every_revision_rebuilds_exactly_from_patches(tmp_path: Path) -> None:
    """Each kind of edit, across several whole-state snapshots, reads back as it was."""
    from wallctl import edits
    from wallctl.config import WallConfig, parse_config
    from wallctl.daemon import load_layouts
    from wallctl.wall import Wall
    from wallctl.walls import WallService

    store = Store(tmp_path / "db", "normal")
    cfg = parse_config({"wall": WALL_CFG}).config
    walls = WallService(
        store,
        [Wall.from_config(WallConfig.model_validate(WALL_CFG))],
        [],
        load_layouts(cfg),
    )
    await walls.load()
    actor = Actor("alice", via="api", session="s1")
    made: list[WallState] = []

    async def change(edit) -> None:  # type: ignore[no-untyped-def]
        made.append(await walls.change(None, actor, "edit", edit))

    def opener(x: int):  # type: ignore[no-untyped-def]
        return lambda s, c: edits.open_window(s, c, x=x, y=0, w=64, h=64)[0]

    for i in range(6):
        await change(opener(i * 100))
    await change(lambda s, c: edits.close(s, "w3"))
    await change(lambda s, c: edits.swap(s, "w1", "w6"))
    await change(lambda s, c: edits.raise_window(s, "w2"))
    await change(lambda s, c: edits.fullscreen(s, c, "w4", True))
    await change(lambda s, c: edits.set_label(s, "w4", "一号"))
    await change(walls.layout_edit_for("3x3", None))
    await change(lambda s, c: edits.restore(s, made[6]))
    await change(lambda s, c: edits.clear(s))
    for i in range(SNAPSHOT_EVERY * 2 + 3):
        if i % 20 == 0:
            await change(opener(0))
        wid = walls.state().windows[-1].id
        await change(lambda s, c, wid=wid, i=i: edits.move(s, c, wid, i + 1, 7))
    assert walls.state().revision == len(made) > 2 * SNAPSHOT_EVERY

    rows = store.read_sync(
        lambda c: c.execute(
            "SELECT revision, patch, length(state) FROM revisions ORDER BY revision"
        ).fetchall()
    )
    whole = [r for r, p, _ in rows if p == 0]
    assert whole == [1, SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY]
    move_sizes = [n for r, p, n in rows[-20:] if p == 1]
    assert move_sizes and max(move_sizes) < 400
    for want in made:
        assert store.revision("main", want.revision) == want, want.revision
    assert store.load_current() == {"main": made[-1]}
    stamps = [h.ts for h in store.history("main", limit=1000)][::-1]
    assert store.revision_at("main", stamps[40]) == made[40]
    store.close()
    # And after a restart, from the file.
    again = Store(tmp_path / "db", "normal")
    try:
        assert again.load_current() == {"main": made[-1]}
        assert again.revision("main", 5) == made[4]
    finally:
        again.close()


def test_patch_roundtrip_keeps_order_and_fields() -> None:
    a = Window(id="w1", x=0, y=0, w=100, h=100)
    b = Window(id="w2", x=10, y=0, w=100, h=100, label="乙")
    c = Window(id="w3", x=20, y=0, w=100, h=100, source="cam")
    old = WallState(wall="main", revision=4, windows=(a, b, c), next_window=4, layout="x")
    cases = [
        WallState(wall="main", revision=5, windows=(a, b.model_copy(update={"x": 1}), c)),
        WallState(wall="main", revision=5, windows=(c, a), next_window=4),
        WallState(wall="main", revision=5, windows=(b, Window(id="w9", x=1, y=1, w=9, h=9))),
        WallState(wall="main", revision=5, windows=(), layout="2x2", next_window=9),
    ]
    for new in cases:
        patch = state_patch(old, new)
        data = apply_patch(old.model_dump(mode="json"), patch)
        data["revision"] = 5
        assert WallState.model_validate(data) == new
    # An in-place edit names only the changed window.
    assert [w["id"] for w in state_patch(old, cases[0])["set"]] == ["w2"]
    assert "order" not in state_patch(old, cases[0]) and "order" in state_patch(old, cases[1])


def test_a_version_2_database_is_migrated_and_read(tmp_path: Path) -> None:
    """Whole states written by the previous schema stay readable; patches follow them."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    for rev in (1, 2):
        conn.execute(
            "INSERT INTO revisions (wall, revision, ts, actor, action, state) "
            "VALUES ('main', ?, ?, 'old', 'a', ?)",
            (rev, float(rev), state(rev, x=rev).model_dump_json()),
        )
    conn.close()
    s = Store(path)
    try:
        assert s.load_current() == {"main": state(2, x=2)}
        s.commit_revision_sync(state(3, x=3), SYSTEM, "a", {}, previous=state(2, x=2))
        (patch,) = s.read_sync(
            lambda c: c.execute("SELECT patch FROM revisions WHERE revision = 3").fetchone()
        )
        assert patch == 1
        assert [s.revision("main", r) for r in (1, 2, 3)] == [state(r, x=r) for r in (1, 2, 3)]
    finally:
        s.close()


async def test_a_bad_row_in_a_run_fails_alone(store: Store) -> None:
    """Revisions of one group go in with executemany; a row that breaks a constraint
    there fails alone, and the gap check still refuses what does not follow."""
    await store.commit_revision(state(1), SYSTEM, "a", {})
    gate = threading.Event()
    blocker = asyncio.ensure_future(store.write(lambda c: gate.wait(5)))
    await asyncio.sleep(0.05)

    def sneak(c: sqlite3.Connection) -> None:
        # Revision 2 of main behind the store's back: the next commit of 2 must clash.
        c.execute(
            "INSERT INTO revisions (wall, revision, ts, actor, action, state) "
            "VALUES ('main', 2, 0, 'x', 'x', ?)",
            (state(2).model_dump_json(),),
        )

    futs = [
        asyncio.ensure_future(store.write(sneak)),
        asyncio.ensure_future(store.commit_revision(state(2, x=5), SYSTEM, "a", {}, state(1))),
        asyncio.ensure_future(store.commit_revision(state(1, wall="side"), SYSTEM, "a", {})),
        asyncio.ensure_future(store.commit_revision(state(3, wall="side"), SYSTEM, "a", {})),
    ]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(*futs, return_exceptions=True)
    await blocker
    assert results[0] is None
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert isinstance(results[2], float)
    assert isinstance(results[3], StoreError)
    assert str(results[3]) == "wall 'side' revision 3 does not follow 1"
    assert store.revision("main", 2) == state(2)
    assert store.load_current()["side"] == state(1, wall="side")
    audited = [(e.wall, e.revision) for e in store.audit_log()]
    assert ("side", 1) in audited and ("main", 2) not in audited


async def test_audit_details_are_redacted_on_the_fast_path_too(store: Store) -> None:
    detail = {"window": "w1", "url": "rtsp://user:s3cret@cam/1", "x": 1, "token": "abc"}
    await store.commit_revision(state(1), ALICE, "window.set_source", detail)
    (entry,) = store.audit_log()
    assert entry.detail["window"] == "w1" and entry.detail["x"] == 1
    assert "s3cret" not in entry.detail["url"] and entry.detail["token"] != "abc"
    await store.audit(ALICE, "x", detail={"note": "rtsp://a:hunter2@h/", "n": 2.5})
    assert "hunter2" not in store.audit_log()[0].detail["note"]


async def test_checkpoints_run_beside_the_writer(store: Store) -> None:
    """The writer never checkpoints in its COMMIT; the checkpoint thread keeps the WAL
    copied back into the database file as commits go by."""
    (auto,) = store._writer.conn.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert auto == 0
    for i in range(250):
        await store.commit_revision(state(i + 1, x=i), SYSTEM, "a", {}, state(i, x=i - 1))
    for _ in range(500):
        if store.checkpoints >= 2:
            break
        await asyncio.sleep(0.01)
    assert store.checkpoints >= 2
    busy, log_pages, copied = store.read_sync(
        lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    )
    assert busy == 0 and copied == log_pages
    assert store.load_current()["main"] == state(250, x=249)


@settings(max_examples=200, deadline=None)
@given(
    n_old=st.integers(0, 12),
    moved=st.sets(st.integers(0, 11)),
    removed=st.sets(st.integers(0, 11)),
    added=st.integers(0, 4),
    shuffle=st.randoms(use_true_random=False),
    reorder=st.booleans(),
)
def test_patches_rebuild_any_edit(
    n_old: int,
    moved: set[int],
    removed: set[int],
    added: int,
    shuffle: random.Random,
    reorder: bool,
) -> None:
    """Whatever the windows did (changed in place, went, came, changed order), the patch
    rebuilds the new state exactly from the old one."""
    old_windows = tuple(Window(id=f"w{i + 1}", x=i, y=i, w=20, h=20, z=i % 3) for i in range(n_old))
    old = WallState(wall="main", revision=7, windows=old_windows, next_window=n_old + 1)
    new_windows = [
        w.model_copy(update={"x": w.x + 5, "label": "改"}) if i in moved else w
        for i, w in enumerate(old_windows)
        if i not in removed
    ]
    new_windows += [
        Window(id=f"w{n_old + 1 + k}", x=k, y=0, w=30, h=30, source="cam") for k in range(added)
    ]
    if reorder:
        shuffle.shuffle(new_windows)
    new = WallState(
        wall="main",
        revision=8,
        windows=tuple(new_windows),
        next_window=n_old + 1 + added,
        layout=None if moved or removed else "2x2",
    )
    data = apply_patch(old.model_dump(mode="json"), state_patch(old, new))
    data["revision"] = 8
    assert WallState.model_validate(data) == new
