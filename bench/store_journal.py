"""What the revision journal saves the event loop: durability "normal", journal vs loop commit.

    .venv/bin/python bench/store_journal.py [--moves 20000] [--rounds 3]

Callers (10, as in one event-loop iteration of the API benchmark's 50 clients, and 50)
move their own window through WallService.change in a closed loop, as the API does. Two
ways of storing the same revisions, in turns (journal, loop commit, journal, ...):

- journal: the store as the daemon opens it: revisions appended to ``wallctl.db-revlog``
  with one write per loop iteration, taken into SQLite by the writer thread;
- loop_commit: ``Store(..., journal=False)``: the event loop commits each iteration's
  revisions in one SQLite transaction (how durability "normal" worked before the
  journal, and how a second opener of a database still works).

Reported per move: CPU of the event loop's thread (what limits the API's throughput),
CPU of the whole process (the writer thread included, and the final catch-up), and the
SQLite commits. Writes bench/results/store_journal.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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

VARIANTS = ("journal", "loop_commit")
ACTOR = Actor("bench", via="api", session="s1")


async def run(db: Path, variant: str, callers: int, moves: int) -> dict[str, float]:
    store = Store(db, "normal", journal=variant != "loop_commit")
    try:
        svc = WallService(store, [bench_wall()], [], {})
        await svc.load()
        ids = []
        for _ in range(callers):
            st, win = edits.open_window(svc.state(), svc.context("main"), x=0, y=0, w=16, h=16)
            ids.append(win.id)
            await svc.change(None, ACTOR, "window.open", lambda s, c, st=st: st)
        per = moves // callers

        async def mover(wid: str) -> None:
            for i in range(per):
                x = (i * 7) % 3800
                await svc.change(
                    None,
                    ACTOR,
                    "window.move",
                    lambda s, c, wid=wid, x=x: edits.move(s, c, wid, x, 0),
                    detail={"id": wid, "x": x, "y": 0},
                )

        commits0 = store.commits
        wall0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
        await asyncio.gather(*(mover(w) for w in ids))
        loop1 = time.thread_time()
        # Everything acknowledged is in the database before the clock stops.
        store.history("main", limit=1)
        wall1, cpu1 = time.perf_counter(), time.process_time()
        done = per * callers
        return {
            "moves": done,
            "moves_per_s": done / (wall1 - wall0),
            "loop_cpu_us": (loop1 - loop0) / done * 1e6,
            "process_cpu_us": (cpu1 - cpu0) / done * 1e6,
            "commits_per_1000": (store.commits - commits0) / done * 1000,
        }
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    figures: dict[str, float] = {}
    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="wallctl-bench-journal-") as tmp:
        for callers in (10, 50):
            for r in range(args.rounds):
                # Alternating, so a load from elsewhere weighs on both.
                for name in VARIANTS:
                    db = Path(tmp) / f"{callers}-{name}-{r}" / "wallctl.db"
                    got = asyncio.run(run(db, name, callers, args.moves))
                    runs.setdefault(f"{callers}_{name}", []).append(got)
    head = ("callers", "store", "moves/s", "loop us", "proc us", "commits/1k")
    print("{:>7} {:<12} {:>9} {:>8} {:>8} {:>10}".format(*head))
    for key, rs in runs.items():
        n_callers, name = key.split("_", 1)
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0] if k != "moves"}
        for k, v in med.items():
            figures[f"c{n_callers}_{name}_{k}"] = round(v, 2)
        print(
            f"{n_callers:>7} {name:<12} {med['moves_per_s']:>9.0f} {med['loop_cpu_us']:>8.1f} "
            f"{med['process_cpu_us']:>8.1f} {med['commits_per_1000']:>10.1f}"
        )
    for callers in (10, 50):
        for variant in ("journal",):
            for what in ("loop", "process"):
                j = figures[f"c{callers}_{variant}_{what}_cpu_us"]
                c = figures[f"c{callers}_loop_commit_{what}_cpu_us"]
                figures[f"c{callers}_{variant}_{what}_cpu_saved_pct"] = round((1 - j / c) * 100, 1)
    targets = {
        "c10_journal_loop_cpu_saved_pct": {"min": 20.0},
        "c10_journal_process_cpu_saved_pct": {"min": 0.0},
    }
    write_result("store_journal", figures, targets, {"runs": runs, "moves": args.moves})


if __name__ == "__main__":
    main()
