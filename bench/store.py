"""Durable changes per second through WallService.change, against bare SQLite.

Each change is a window.move edit, acknowledged only once committed (WAL,
synchronous=FULL). Measured sequentially (one caller awaiting each change) and with 50
concurrent callers (where group commit shares fsyncs), against bare SQLite inserts of a
row of the same size, one transaction each, with the same settings, in the same run.
Target: the service reaches at least 50 % of bare SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import bench_wall, write_result

from wallctl import edits
from wallctl.store import Actor, Store
from wallctl.walls import WallService

SEQUENTIAL = 400
CALLERS = 50
PER_CALLER = 20
ACTOR = Actor("bench", via="cli")


def move_edit(s, c):  # type: ignore[no-untyped-def]
    # Every change really moves the window, so each one makes a revision.
    return edits.move(s, c, "w1", (s.revision + 1) % 3800, 0)


async def service_rates(work: Path) -> tuple[float, float, int, int]:
    store = Store(work / "svc.db", "full")
    service = WallService(store, [bench_wall()], [], {})
    await service.load()
    await service.change(
        None,
        ACTOR,
        "window.open",
        lambda s, c: edits.open_window(s, c, x=0, y=0, w=16, h=16)[0],
    )
    t0 = time.perf_counter()
    for _ in range(SEQUENTIAL):
        await service.change(None, ACTOR, "window.move", move_edit)
    sequential = SEQUENTIAL / (time.perf_counter() - t0)

    async def caller() -> None:
        for _ in range(PER_CALLER):
            await service.change(None, ACTOR, "window.move", move_edit)

    commits0 = store.commits
    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    concurrent = CALLERS * PER_CALLER / (time.perf_counter() - t0)
    commits = store.commits - commits0
    assert service.state().revision == 1 + SEQUENTIAL + CALLERS * PER_CALLER
    # Bare SQLite writes rows the size of what the service stored (mostly patches now).
    size = int(
        store.read_sync(lambda c: c.execute("SELECT AVG(length(state)) FROM revisions").fetchone())[
            0
        ]
    )
    store.close()
    return sequential, concurrent, commits, size


def bare_rate(work: Path, payload_size: int) -> float:
    conn = sqlite3.connect(work / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts REAL, body TEXT)")
    body = "x" * payload_size
    t0 = time.perf_counter()
    for i in range(SEQUENTIAL):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", (i, time.time(), body))
        conn.execute("COMMIT")
    rate = SEQUENTIAL / (time.perf_counter() - t0)
    conn.close()
    return rate


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wallctl-bench-") as tmp:
        work = Path(tmp)
        # Interleave so both see the same disk and load; keep the better of two each.
        seq1, conc1, commits, size = asyncio.run(service_rates(work / "a"))
        bare1 = bare_rate(work / "a", size)
        seq2, conc2, commits2, _ = asyncio.run(service_rates(work / "b"))
        bare2 = bare_rate(work / "b", size)
    sequential, concurrent, bare = max(seq1, seq2), max(conc1, conc2), max(bare1, bare2)
    figures = {
        "bare_sqlite_per_s": round(bare, 1),
        "service_sequential_per_s": round(sequential, 1),
        "service_concurrent50_per_s": round(concurrent, 1),
        "sequential_vs_bare": round(sequential / bare, 3),
        "concurrent50_vs_bare": round(concurrent / bare, 3),
        "concurrent50_changes_per_commit": round(CALLERS * PER_CALLER / min(commits, commits2), 2),
    }
    write_result(
        "store",
        figures,
        {"sequential_vs_bare": {"min": 0.5}, "concurrent50_vs_bare": {"min": 0.5}},
        {
            "sequential_changes": SEQUENTIAL,
            "callers": CALLERS,
            "per_caller": PER_CALLER,
            "stored_row_bytes_mean": size,
            "durability": "WAL, synchronous=FULL",
        },
    )


if __name__ == "__main__":
    main()
