"""``wallctl recordings search|export``: find recorded segments, stitch a time span.

Both read the state database and the segment files directly (the daemon may run).
Times are ISO 8601 (``2026-11-23T14:02:00``, local time unless it carries an offset or
``Z``) or Unix seconds. ``export`` copies packets without re-encoding (export.py).

Exit codes: 0 done, 1 the database or a file failed, 2 bad usage, 3 nothing recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from wallctl.recordings.export import ExportError, export_span
from wallctl.recordings.index import SegmentIndex

PROG = "wallctl recordings"


def parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give ISO 8601 (2026-11-23T14:02:00) or Unix seconds"
        ) from None


def add_parser(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=None, help="config file")
    common.add_argument("--state-dir", type=Path, default=None, help="state directory")
    common.add_argument("--source", default=None, help="e.g. mobile/patrol-7")
    common.add_argument("--identity", default=None, help="terminal id")
    common.add_argument("--from", dest="start", type=parse_time, required=True)
    common.add_argument("--to", dest="end", type=parse_time, required=True)
    p = subparsers.add_parser("recordings", help="recorded footage of mobile terminals")
    sub = p.add_subparsers(dest="recordings_command", metavar="COMMAND", required=True)
    s = sub.add_parser("search", parents=[common], help="segments overlapping a time span")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search)
    e = sub.add_parser("export", parents=[common], help="one file of a span, not re-encoded")
    e.add_argument(
        "-o", "--output", type=Path, required=True, help="output file (.mp4; .mkv works too)"
    )
    e.set_defaults(func=cmd_export)


def _index(args: argparse.Namespace) -> Any:
    from wallctl.accounts_cli import _open_store

    return _open_store(args)


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _search(args: argparse.Namespace) -> list[Any] | int:
    from wallctl.accounts_cli import _Fail

    if args.end < args.start:
        return _error("--to is before --from", 2)
    try:
        store = _index(args)
    except _Fail as e:
        return _error(e.message, e.code)
    try:
        return list(
            SegmentIndex(store).search(args.source, args.identity, args.start, args.end, 10000)
        )
    finally:
        store.close()


def cmd_search(args: argparse.Namespace) -> int:
    segs = _search(args)
    if isinstance(segs, int):
        return segs
    if args.json:
        print(json.dumps([{**s.to_dict(), "path": s.path} for s in segs], ensure_ascii=False))
        return 0 if segs else 3
    for s in segs:
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.start))
        dur = f"{s.end - s.start:7.1f}s" if s.end is not None else "  (open)"
        print(f"{s.id:>6} {s.source:<28} {s.identity:<16} {start} {dur} {s.bytes:>11} {s.state}")
    if not segs:
        print("no recordings in that span", file=sys.stderr)
        return 3
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    segs = _search(args)
    if isinstance(segs, int):
        return segs
    if not segs:
        return _error("no recordings in that span", 3)
    try:
        n = export_span(segs, args.start, args.end, args.output)
    except ExportError as e:
        return _error(str(e), 3)
    except OSError as e:
        return _error(f"cannot write {args.output}: {e}", 1)
    print(f"exported {n} frames from {len(segs)} segments to {args.output}")
    return 0
