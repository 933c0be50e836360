"""Retention: segments older than ``recordings.retention_days`` are deleted, file first,
then index row (a crash between the two leaves a row whose file is gone, which search
still lists as ``missing`` rather than a file nobody can find). Off by default: the
standards ask for enforcement footage to be kept permanently."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wallctl.logs import get_logger
from wallctl.recordings.index import SegmentIndex

log = get_logger("wallctl.recordings")

BATCH = 500


def prune(index: SegmentIndex, before: float) -> int:
    """Delete every closed segment that ended before ``before``; return how many."""
    removed = 0
    while True:
        rows = index.store.read_sync(
            lambda c: c.execute(
                "SELECT id, path FROM recordings WHERE state != 'open' AND end_ts < ? "
                "ORDER BY end_ts LIMIT ?",
                (before, BATCH),
            ).fetchall()
        )
        if not rows:
            return removed
        for _, path in rows:
            try:
                Path(path).unlink(missing_ok=True)
            except OSError as e:
                log.error("recording could not be deleted", path=path, error=str(e))
        ids = [(int(r[0]),) for r in rows]

        def job(conn: sqlite3.Connection, ids: list[tuple[int]] = ids) -> None:
            conn.executemany("DELETE FROM recordings WHERE id = ?", ids)

        index.store.write_sync(job)
        removed += len(rows)
        log.info("recordings past retention deleted", segments=len(rows))
