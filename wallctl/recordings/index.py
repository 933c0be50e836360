"""The segment index (table ``recordings``): one row per segment file.

A row is inserted ``open`` when its segment starts and closed with its end time and size
when the segment ends. After a crash the daemon finds rows still ``open`` and closes them
as ``recovered`` from the file itself (its size and modification time), after cutting a
fragment the crash left half-written (repair.py): the file plays up to its last whole
fragment.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wallctl.recordings.repair import truncate_to_complete
from wallctl.store import Store

MAX_RESULTS = 10_000


@dataclass(frozen=True)
class Segment:
    id: int
    source: str
    identity: str
    path: str
    start: float
    end: float | None
    bytes: int
    codecs: str
    state: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "identity": self.identity,
            "start": self.start,
            "end": self.end,
            "bytes": self.bytes,
            "codecs": self.codecs,
            "state": self.state,
        }


_COLUMNS = "id, source, identity, path, start_ts, end_ts, bytes, codecs, state"


def _seg(row: tuple[Any, ...]) -> Segment:
    return Segment(*row)


class SegmentIndex:
    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, source: str, identity: str, path: Path, start: float, codecs: str) -> int:
        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO recordings (source, identity, path, start_ts, codecs, state) "
                "VALUES (?, ?, ?, ?, ?, 'open')",
                (source, identity, str(path), start, codecs),
            )
            return int(cur.lastrowid or 0)

        return self.store.write_sync(job)

    def close(self, seg_id: int, end: float, size: int, state: str = "closed") -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE recordings SET end_ts = ?, bytes = ?, state = ? WHERE id = ?",
                (end, size, state, seg_id),
            )

        self.store.write_sync(job)

    def recover(self) -> int:
        """Close the segments a crash left open; return how many."""
        rows = self.store.read_sync(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM recordings WHERE state = 'open'"
            ).fetchall()
        )
        for row in rows:
            seg = _seg(row)
            p = Path(seg.path)
            try:
                truncate_to_complete(p)
                st = p.stat()
                end, size, state = max(seg.start, st.st_mtime), st.st_size, "recovered"
            except OSError:
                end, size, state = seg.start, 0, "missing"
            self.close(seg.id, end, size, state)
        return len(rows)

    def search(
        self,
        source: str | None,
        identity: str | None,
        start: float,
        end: float,
        limit: int = 1000,
    ) -> list[Segment]:
        """Segments overlapping [start, end], oldest first."""
        where = ["start_ts <= ?", "COALESCE(end_ts, 1e18) >= ?"]
        args: list[Any] = [end, start]
        if source is not None:
            where.append("source = ?")
            args.append(source)
        if identity is not None:
            where.append("identity = ?")
            args.append(identity)
        sql = (
            f"SELECT {_COLUMNS} FROM recordings WHERE {' AND '.join(where)} "
            f"ORDER BY start_ts, id LIMIT ?"
        )
        args.append(min(limit, MAX_RESULTS))
        rows = self.store.read_sync(lambda c: c.execute(sql, args).fetchall())
        return [_seg(r) for r in rows]

    def get(self, seg_id: int) -> Segment | None:
        row = self.store.read_sync(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM recordings WHERE id = ?", (seg_id,)
            ).fetchone()
        )
        return _seg(row) if row else None
