"""Durability "normal": new revisions are acknowledged once appended to the revision
journal (``<db>-revlog``); the writer thread takes them into SQLite in big groups; the
next open replays what a dead process left behind (wallctl/store.py, wallctl/revlog.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallctl import edits, revlog
from wallctl import store as store_mod
from wallctl.component import Status
from wallctl.config import WallConfig
from wallctl.errors import Unavailable
from wallctl.store import SYSTEM, Actor, Store, StoreComponent, StoreError
from wallctl.wall import Wall
from wallctl.walls import WallService
from wallctl.wallstate import WallState, Window

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "helpers"))
from durable_writer import position  # noqa: E402
from kill_writer import kill_writer  # noqa: E402

ALICE = Actor("alice", via="api", session="s1")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "wallctl.db"


@pytest.fixture
def slow_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Journaled rows stay journaled until something asks for them (a read, close)."""
    monkeypatch.setattr(store_mod, "INGEST_DELAY_S", 30.0)


@pytest.fixture
def normal(db: Path) -> Iterator[Store]:
    s = Store(db, "normal")
    yield s
    s.close()


def state(rev: int, wall: str = "main", x: int | None = None) -> WallState:
    win = Window(id="w1", x=rev if x is None else x, y=0, w=100, h=100)
    return WallState(wall=wall, revision=rev, windows=(win,), next_window=2)


async def commit(s: Store, rev: int, wall: str = "main") -> None:
    prev = state(rev - 1, wall) if rev > 1 else None
    await s.commit_revision(state(rev, wall), ALICE, "window.move", {"id": "w1"}, prev)


def raw(db: Path, sql: str) -> list[tuple[object, ...]]:
    """What the database file holds, read past the store (no catching up)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def stored(db: Path, wall: str = "main") -> list[int]:
    return [
        int(str(r[0]))
        for r in raw(db, f"SELECT revision FROM revisions WHERE wall = '{wall}' ORDER BY revision")
    ]


def audited(db: Path, wall: str = "main") -> list[int]:
    return [
        int(str(r[0]))
        for r in raw(db, f"SELECT revision FROM audit WHERE wall = '{wall}' ORDER BY id")
    ]


def rows_for(revs: list[int], wall: str = "main") -> list[tuple[list[object], list[object]]]:
    """Journal entries as the store writes them, for revisions ``revs`` of ``wall``."""
    out = []
    for rev in revs:
        r = Store._revision_rows(
            state(rev, wall),
            state(rev - 1, wall) if rev > 1 else None,
            ALICE,
            "window.move",
            {"id": "w1"},
            1700000000.0 + rev,
        )
        out.append((list(r.row), list(r.audit)))
    return out


def said(caplog: pytest.LogCaptureFixture) -> str:
    """The captured log: each event with its structured fields (wallctl.logs)."""
    lines = []
    for r in caplog.records:
        fields = getattr(r, "wallctl_fields", {})
        lines.append(" ".join([r.getMessage(), *(f"{k}={v}" for k, v in fields.items())]))
    return "\n".join(lines)


def journal_of(db: Path) -> Path:
    return Path(f"{db}{store_mod.JOURNAL_SUFFIX}")


def seed(db: Path, revs: list[int]) -> None:
    """A database holding ``revs`` of wall main, written the way durability "full" does."""
    s = Store(db, "full")
    for rev in revs:
        s.commit_revision_sync(state(rev), ALICE, "window.move", {}, state(rev - 1))
    s.close()


# --- the hot path -------------------------------------------------------------------------------


async def test_revisions_are_acked_from_the_journal_and_taken_in_later(
    normal: Store, db: Path, slow_ingest: None
) -> None:
    for rev in (1, 2, 3):
        await commit(normal, rev)
    # Acknowledged, in the journal, not yet in the database.
    assert stored(db) == [] and normal.commits == 0
    scan = revlog.scan(journal_of(db).read_bytes())
    assert scan.problem is None and [e.revision for r in scan.records for e in r.entries] == [
        1,
        2,
        3,
    ]
    # A read catches up first: read-your-writes.
    assert [h.revision for h in normal.history("main")] == [3, 2, 1]
    assert stored(db) == [1, 2, 3] and audited(db) == [1, 2, 3]
    assert normal.commits == 1


def test_journaled_rows_reach_the_database_without_a_read(db: Path) -> None:
    """The loop hands rows over on a timer; a store used by one loop, then another (the
    first one's timer never fired), still gets its rows in."""
    s = Store(db, "normal")
    try:
        asyncio.run(commit(s, 1))

        async def second() -> None:
            await commit(s, 2)
            deadline = time.monotonic() + 10
            while stored(db) != [1, 2] and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        asyncio.run(second())
        assert stored(db) == [1, 2] and audited(db) == [1, 2]
    finally:
        s.close()


async def test_reads_see_every_acknowledged_write(normal: Store, slow_ingest: None) -> None:
    await commit(normal, 1)
    assert normal.revision("main", 1) == state(1)
    await commit(normal, 2)
    assert normal.revision_at("main", time.time() + 1) == state(2)
    await commit(normal, 3)
    assert [a.revision for a in normal.audit_log(wall="main")] == [3, 2, 1]
    await commit(normal, 4)
    # From a worker thread too (asyncio.to_thread), and through ``read``.
    assert (
        await normal.read(lambda c: c.execute("SELECT MAX(revision) FROM revisions").fetchone())
    )[0] == 4
    await commit(normal, 5)
    assert normal.load_current()["main"] == state(5)


async def test_a_refused_revision_is_refused_as_the_database_would(normal: Store) -> None:
    await commit(normal, 1)
    with pytest.raises(StoreError, match="wall 'main' revision 3 does not follow 1"):
        await commit(normal, 3)
    with pytest.raises(StoreError, match="wall 'main' revision 1 does not follow 1"):
        await commit(normal, 1)
    # In one loop iteration: the gap is refused, the rest goes through.
    got = await asyncio.gather(
        commit(normal, 2), commit(normal, 4), commit(normal, 3), return_exceptions=True
    )
    assert got[0] is None and got[2] is None
    assert isinstance(got[1], StoreError) and "revision 4 does not follow 2" in str(got[1])
    assert [h.revision for h in normal.history("main")] == [3, 2, 1]


async def test_a_burst_is_taken_in_with_few_transactions(normal: Store, db: Path) -> None:
    """50 walls changing as fast as they can: thousands of revisions, a few dozen commits."""
    per_wall = 100

    async def writer(wall: str) -> None:
        for rev in range(1, per_wall + 1):
            await commit(normal, rev, wall)

    walls = [f"wall{i}" for i in range(50)]
    await asyncio.gather(*(writer(w) for w in walls))
    total = per_wall * len(walls)
    assert normal.commits < total / 20, normal.commits
    counts = raw(db, "SELECT COUNT(*), COUNT(DISTINCT wall) FROM revisions")
    # The last rows may still wait for their hand-over: a read takes them in.
    assert (
        normal.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM revisions").fetchone()[0])
        == total
    )
    assert counts[0][1] <= len(walls)
    assert (
        normal.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM audit").fetchone()[0]) == total
    )


async def test_close_takes_everything_in_and_empties_the_journal(
    db: Path, slow_ingest: None
) -> None:
    s = Store(db, "normal")
    for rev in range(1, 101):
        await commit(s, rev)
    assert journal_of(db).stat().st_size > 0 and stored(db) == []
    s.close()
    assert journal_of(db).stat().st_size == 0
    assert stored(db) == list(range(1, 101)) and audited(db) == list(range(1, 101))


async def test_a_big_journal_is_emptied_once_taken_in(
    normal: Store, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_mod, "TRUNCATE_AT_BYTES", 4096)
    for rev in range(1, 41):
        await commit(normal, rev)
    normal.history("main")
    # Emptied after the COMMIT that took in the record that crossed the size.
    assert journal_of(db).stat().st_size < 4096
    assert stored(db) == list(range(1, 41))


async def test_other_writes_keep_their_order_behind_journaled_revisions(
    normal: Store, db: Path, slow_ingest: None
) -> None:
    """An audit write after acknowledged revisions goes through the writer thread behind
    them: audit ids keep the order in which things were acknowledged."""
    for rev in (1, 2):
        await commit(normal, rev)
    await normal.audit(ALICE, "session.login")
    actions = [r[0] for r in raw(db, "SELECT action FROM audit ORDER BY id")]
    assert actions == ["window.move", "window.move", "session.login"]


async def test_rows_already_in_the_database_are_taken_in_once(
    normal: Store, db: Path, slow_ingest: None
) -> None:
    """Someone else put a journaled revision in the database first (a replay by another
    opener): the writer inserts only what is missing, each audit row once."""
    for rev in (1, 2, 3):
        await commit(normal, rev)
    entry = revlog.scan(journal_of(db).read_bytes()).records[0].entries[0]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?, ?)", entry.row)
    conn.execute(
        "INSERT INTO audit (ts, actor, session, via, origin, action, wall, revision, result, "
        "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        entry.audit,
    )
    conn.close()
    assert [h.revision for h in normal.history("main")] == [3, 2, 1]
    assert stored(db) == [1, 2, 3] and audited(db) == [1, 2, 3]


async def test_commit_revision_sync_goes_through_the_journal(
    normal: Store, db: Path, slow_ingest: None
) -> None:
    await commit(normal, 1)
    await asyncio.to_thread(
        normal.commit_revision_sync, state(2), SYSTEM, "state.restore", {}, state(1)
    )
    with pytest.raises(StoreError, match="revision 2 does not follow 2"):
        await asyncio.to_thread(normal.commit_revision_sync, state(2), SYSTEM, "x", {})
    await commit(normal, 3)
    assert [h.revision for h in normal.history("main")] == [3, 2, 1]


# --- failures ----------------------------------------------------------------------------------


def _service(s: Store) -> WallService:
    cfg = WallConfig.model_validate(
        {
            "tiles": {
                "rows": 1,
                "cols": 1,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 1920,
                "height_px": 1080,
            }
        }
    )
    return WallService(s, [Wall.from_config(cfg)], [], {})


async def _open_window(svc: WallService) -> None:
    await svc.change(
        None, ALICE, "window.open", lambda s, c: edits.open_window(s, c, x=0, y=0, w=16, h=16)[0]
    )


async def _move(svc: WallService, x: int) -> WallState:
    return await svc.change(None, ALICE, "window.move", lambda s, c: edits.move(s, c, "w1", x, 0))


async def test_a_failed_journal_write_fails_the_change_and_leaves_the_wall(
    normal: Store, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc = _service(normal)
    await svc.load()
    await _open_window(svc)
    await _move(svc, 10)
    journal = normal._journal
    assert journal is not None and journal.fd is not None
    good = journal_of(db).stat().st_size
    # The descriptor goes bad (as on an I/O error): a read-only one cannot be written.
    os.close(journal.fd)
    journal.fd = os.open(journal_of(db), os.O_RDONLY)
    before = svc.state()
    with pytest.raises(Unavailable, match="the wall is unchanged"):
        await _move(svc, 20)
    assert svc.state() == before
    assert "revision journal write failed" in caplog.text
    assert journal_of(db).stat().st_size == good
    # Later changes work (the journal was opened again) and follow the last good one.
    after = await _move(svc, 30)
    assert after.revision == before.revision + 1
    assert revlog.scan(journal_of(db).read_bytes()).problem is None
    assert normal.history(before.wall)[0].revision == after.revision
    assert normal.health().status is Status.OK
    assert "1 revision journal write(s) failed" in normal.health().detail


async def test_a_partial_write_is_cut_back_so_later_records_stay_readable(
    normal: Store, db: Path
) -> None:
    """The file cannot grow (a full disk; here RLIMIT_FSIZE): the record written in part
    is cut off, the revisions in it fail, and the next append starts on a record boundary."""
    await commit(normal, 1)
    normal.history("main")  # the writer idle: the limit below hits only the journal
    size = journal_of(db).stat().st_size
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, old_limit[1]))
    try:
        with pytest.raises(StoreError, match=r"could not be written.*File too large"):
            await commit(normal, 2)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert journal_of(db).stat().st_size == size
    await commit(normal, 2)
    scan = revlog.scan(journal_of(db).read_bytes())
    assert scan.problem is None
    assert [e.revision for r in scan.records for e in r.entries][-1] == 2
    assert [h.revision for h in normal.history("main")] == [2, 1]


async def test_a_database_that_refuses_the_rows_keeps_them_in_the_journal(
    normal: Store, db: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledged revisions the database will not take stay safe in the journal: the
    store says so in its health, reads fail rather than lie, and once the database takes
    rows again everything arrives, once."""
    monkeypatch.setattr(store_mod, "INGEST_RETRY_S", 0.05)
    monkeypatch.setattr(store_mod, "CATCH_UP_TIMEOUT_S", 5.0)
    caplog.set_level(logging.INFO, logger="wallctl.store")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "CREATE TRIGGER no_rows BEFORE INSERT ON revisions "
        "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END"
    )
    for rev in (1, 2, 3):
        await commit(normal, rev)
    with pytest.raises(StoreError, match=r"not readable yet.*the disk says no"):
        await asyncio.to_thread(normal.history, "main")
    health = StoreComponent(normal).health()  # what /healthz shows
    assert health.status is Status.DEGRADED and "the disk says no" in health.detail
    await commit(normal, 4)  # still acknowledged: the journal has it
    # Not without bound: past MAX_BEHIND_BYTES waiting, new revisions are refused.
    monkeypatch.setattr(store_mod, "MAX_BEHIND_BYTES", journal_of(db).stat().st_size - 1)
    with pytest.raises(StoreError, match=r"bytes of revisions wait .* the disk says no"):
        await commit(normal, 5)
    monkeypatch.setattr(store_mod, "MAX_BEHIND_BYTES", 1 << 30)
    said = [r for r in caplog.records if "wait for the state database" in r.getMessage()]
    assert len(said) == 1  # once a minute, however many retries
    conn.execute("DROP TRIGGER no_rows")
    conn.close()
    deadline = time.monotonic() + 10
    while normal.health().status is not Status.OK and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert [h.revision for h in normal.history("main")] == [4, 3, 2, 1]
    assert audited(db) == [1, 2, 3, 4]
    assert "reached the database again" in caplog.text


# --- replay at open -----------------------------------------------------------------------------


def test_replay_inserts_what_the_database_lacks_exactly_once(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed(db, [1, 2])
    # The journal overlaps the database (a crash between a COMMIT and the truncation).
    journal_of(db).write_bytes(revlog.encode(rows_for([1, 2, 3])) + revlog.encode(rows_for([4])))
    caplog.set_level(logging.INFO, logger="wallctl.store")
    s = Store(db, "normal")
    try:
        assert stored(db) == [1, 2, 3, 4] and audited(db) == [1, 2, 3, 4]
        assert journal_of(db).stat().st_size == 0
        assert s.load_current()["main"] == state(4)
        assert "inserted=2 present=2" in said(caplog)
    finally:
        s.close()
    assert not list(db.parent.glob("*.rejected"))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("torn", "torn record"),
        ("garbage", "no record starts"),
        ("crc", "fails its CRC"),
        ("huge", "over"),
        ("not-json", "the payload is not JSON"),
    ],
)
def test_a_damaged_journal_is_replayed_up_to_the_damage(
    db: Path, caplog: pytest.LogCaptureFixture, damage: str, problem: str
) -> None:
    seed(db, [1])
    good = revlog.encode(rows_for([2])) + revlog.encode(rows_for([3]))
    later = revlog.encode(rows_for([4]))
    bad = {
        "torn": later[:-5],
        "garbage": b"\x00garbage" * 4 + later,
        "crc": later[:-1] + bytes([later[-1] ^ 0x20]),
        "huge": later[:4] + b"\xff\xff\xff\xff" + later[8:],
        "not-json": revlog.frame(b"<html>oops</html>") + later,
    }[damage]
    journal_of(db).write_bytes(good + bad)
    Store(db, "normal").close()
    # Everything before the damage, nothing after it, each once.
    assert stored(db) == [1, 2, 3] and audited(db) == [1, 2, 3]
    assert "revision journal damaged" in said(caplog) and problem in said(caplog)
    assert journal_of(db).stat().st_size == 0
    (kept,) = db.parent.glob("*.rejected")
    assert kept.read_bytes() == good + bad
    # The store goes on from there.
    s = Store(db, "normal")
    try:
        asyncio.run(commit(s, 4))
        assert [h.revision for h in s.history("main")][:2] == [4, 3]
    finally:
        s.close()


def test_a_revision_gap_is_refused_and_nothing_after_it_misapplied(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed(db, [1, 2])
    records = (
        revlog.encode(rows_for([3]))
        # 4 is missing: 5 and 6 are patches against states the store never had.
        + revlog.encode(rows_for([5]) + rows_for([1], "lobby"))
        + revlog.encode(rows_for([6]) + rows_for([2], "lobby"))
        # A wall the database has never seen, starting mid-way.
        + revlog.encode(rows_for([7], "ghost"))
    )
    journal_of(db).write_bytes(records)
    s = Store(db, "normal")
    try:
        assert stored(db) == [1, 2, 3]
        assert stored(db, "lobby") == [1, 2] and audited(db, "lobby") == [1, 2]
        assert stored(db, "ghost") == []
        assert "wall 'main' revision 5 does not follow 3" in said(caplog)
        assert "wall 'main': 1 later revisions refused with it" in said(caplog)
        assert "wall 'ghost' revision 7 does not follow 0" in said(caplog)
        assert len(list(db.parent.glob("*.rejected"))) == 1
        # The wall continues from what the database holds.
        asyncio.run(commit(s, 4))
        assert s.load_current()["main"] == state(4)
    finally:
        s.close()


def test_a_read_only_opener_beside_a_live_writer_leaves_the_journal(
    db: Path, slow_ingest: None, caplog: pytest.LogCaptureFixture
) -> None:
    owner = Store(db, "normal")

    async def write() -> None:
        for rev in (1, 2, 3):
            await commit(owner, rev)

    asyncio.run(write())
    size = journal_of(db).stat().st_size
    assert size > 0
    # The CLI's read commands open the store this way beside a running daemon.
    reader = Store(db, "normal", journal=False)
    try:
        assert reader.history("main") == []  # not replayed by the reader...
        assert journal_of(db).stat().st_size == size  # ... nor truncated
    finally:
        reader.close()
    assert journal_of(db).stat().st_size == size
    # A second Store that would own it (in this process or another) does not get it.
    caplog.set_level(logging.INFO, logger="wallctl.store")
    second = Store(db, "normal")
    try:
        assert "revision journal in use by another store" in caplog.text
        assert second.history("main") == [] and journal_of(db).stat().st_size == size
    finally:
        second.close()
    assert [h.revision for h in owner.history("main")] == [3, 2, 1]
    owner.close()
    assert stored(db) == [1, 2, 3] and audited(db) == [1, 2, 3]


def test_the_cli_read_commands_leave_a_live_daemons_journal_alone(
    db: Path, slow_ingest: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from wallctl.cli import main

    owner = Store(db, "normal")
    try:
        asyncio.run(commit(owner, 1))
        size = journal_of(db).stat().st_size
        assert size > 0
        argv = ["--state-dir", str(db.parent), "--json"]
        assert main(["state", "history", "--wall", "main", *argv]) == 0
        # Not replayed: the daemon's writer takes it in; the CLI reads what is stored.
        assert capsys.readouterr().out.strip() == "[]"
        assert journal_of(db).stat().st_size == size
        assert owner.history("main")[0].revision == 1
    finally:
        owner.close()
    # Nor does a read command replay a journal a dead daemon left (the lock is free then,
    # but reading must not write): the next daemon start does.
    journal_of(db).write_bytes(revlog.encode(rows_for([2])))
    assert main(["state", "history", "--wall", "main", *argv]) == 0
    assert [r["revision"] for r in json.loads(capsys.readouterr().out)] == [1]
    assert journal_of(db).read_bytes() == revlog.encode(rows_for([2]))
    Store(db, "normal").close()
    assert stored(db) == [1, 2]


def test_full_durability_replays_a_journal_left_behind(db: Path) -> None:
    seed(db, [1])
    journal_of(db).write_bytes(revlog.encode(rows_for([2, 3])))
    s = Store(db, "full")
    try:
        assert s._journal is None and s.load_current()["main"] == state(3)
        assert journal_of(db).stat().st_size == 0
    finally:
        s.close()


# --- kill -9 ---------------------------------------------------------------------------------


def test_kill_9_while_acking_loses_no_acknowledged_revision(tmp_path: Path) -> None:
    """A writer process acknowledges revisions from its journal; kill -9 at a random
    moment; the next open replays: every acknowledged revision and its audit row are in
    the database exactly once, and replaying the same journal again adds nothing."""
    state_dir = tmp_path / "state"
    db = state_dir / "wallctl.db"
    last_ack = 0
    left_behind = 0
    for delay in (0.3, 0.15, 0.45):
        acks = kill_writer(state_dir, delay, durability="normal").acks
        assert acks, "the writer acknowledged nothing"
        last_ack = acks[-1]
        journal = journal_of(db).read_bytes()
        # The dead process left acknowledged revisions in the journal (unless the kill
        # fell just after a truncation), whole records only.
        assert revlog.scan(journal).problem is None
        left_behind += bool(journal)
        saved = tmp_path / "journal.copy"
        saved.write_bytes(journal)
        for _ in range(2):
            Store(db, "normal").close()
            top = stored(db)[-1]
            assert last_ack <= top <= last_ack + 1
            assert stored(db) == list(range(1, top + 1))
            assert audited(db) == list(range(1, top + 1))
            # As if the process died between the replay's COMMIT and the truncation.
            shutil.copyfile(saved, journal_of(db))
        journal_of(db).write_bytes(b"")
        s = Store(db, "normal")
        try:
            w1 = s.load_current()["main"].window("w1")
            assert w1 is not None and (w1.x, w1.y) == position(top)
        finally:
            s.close()
    assert last_ack > 20
    assert left_behind >= 2, "the replay was hardly exercised"
