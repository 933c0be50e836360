"""An acknowledged change survives `kill -9`: 20 kills at random moments, same seed each run."""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

from wallctl.store import JOURNAL_SUFFIX, Store, state_at

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "helpers"))
from durable_writer import position  # noqa: E402
from kill_writer import kill_writer  # noqa: E402

ROUNDS = 20
SEED = 20240312


def run_round(state_dir: Path, delay: float, from_ready: bool) -> tuple[int | None, int | None]:
    """Start the writer, kill -9 it after ``delay``; (READY revision, last ACKed revision)."""
    killed = kill_writer(state_dir, delay, wait_ready=from_ready)
    return killed.ready, killed.last_ack


def check_db(db: Path, last_ack: int | None) -> int:
    # With durability "normal" an acknowledged revision may be only in the revision journal
    # when the process dies: the promise is "recovered at the next open", so open the store
    # as the next daemon would (it replays the journal) before reading the database.
    Store(db).close()
    # ... which leaves the journal empty once all of it is in the database.
    assert Path(f"{db}{JOURNAL_SUFFIX}").stat().st_size == 0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (top,) = conn.execute("SELECT COALESCE(MAX(revision), 0) FROM revisions").fetchone()
        (count,) = conn.execute("SELECT COUNT(*) FROM revisions").fetchone()
        assert count == top, "revisions are not contiguous"
        # Each revision's audit row exactly once (a replay must not add a second).
        audited = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT revision) FROM audit WHERE wall = 'main'"
        ).fetchone()
        assert audited == (top, top), f"audit rows {audited} for {top} revisions"
        if last_ack is not None:
            assert top >= last_ack, f"ACKed revision {last_ack} lost (store has {top})"
            # Changes are sequential: at most the one in flight is stored but not ACKed.
            assert top <= last_ack + 1
            # Rebuilt from the last whole state and the patches after it, as the daemon does.
            st = state_at(conn, "main", last_ack)
            assert st is not None, f"revision {last_ack} cannot be rebuilt"
            w1 = st.window("w1")
            assert w1 is not None
            expected = position(last_ack) if last_ack > 1 else (0, 0)
            assert (w1.x, w1.y) == expected
        return int(top)
    finally:
        conn.close()


def test_acknowledged_changes_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    state_dir = tmp_path / "state"
    db = state_dir / "wallctl.db"
    last_ack: int | None = None
    stored = 0
    acked_rounds = 0
    for i in range(ROUNDS):
        delay = rng.uniform(0.05, 0.5)
        # Most kills land in the write loop; every fourth may land in start-up.
        ready, ack = run_round(state_dir, delay, from_ready=i % 4 != 3)
        if ready is not None:
            # Each run continues from what the store holds.
            assert ready >= stored, (ready, stored)
        if ack is not None:
            assert last_ack is None or ack > last_ack
            last_ack = ack
            acked_rounds += 1
        if db.exists():
            stored = check_db(db, last_ack)
    assert acked_rounds >= ROUNDS // 2
    assert last_ack is not None and last_ack > ROUNDS
