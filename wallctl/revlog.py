"""The revision journal's record format: pure encode and decode, no I/O.

With durability "normal" the store acknowledges a new wall revision once it is appended
to a journal file beside the database (``wallctl.db-revlog``); a thread copies the rows
into SQLite later, in big transactions, and the journal is replayed at the next open if
the process died first (wallctl/store.py).

A record is a 12-byte header and a payload::

    magic  4 bytes  b"wRv1"
    length u32 LE   payload bytes
    crc    u32 LE   CRC-32 of the length field and the payload

The payload is a JSON array of entries ``[row, audit]``: the 7 values of the
``revisions`` row (wall, revision, ts, actor, action, state, patch) and the 10 of its
``audit`` row (ts, actor, session, via, origin, action, wall, revision, result, detail),
in the order the store inserts them.

A file is a run of records. Reading stops at the first record that is torn (the process
died in the middle of an append), damaged or malformed: what follows it cannot be trusted
to start on a record boundary. The CRC covers the length too, so a damaged length is
caught before it is used to find the next record.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

MAGIC = b"wRv1"
_HEADER = struct.Struct("<4sII")
HEADER_SIZE = _HEADER.size
# One record holds one event-loop iteration's revisions: a few hundred rows of a few
# hundred bytes. A length beyond this is damage, not data.
MAX_PAYLOAD = 64 * 1024 * 1024
# Bounds that keep a hostile or damaged entry out of the database.
MAX_WALL_ID = 256
MAX_REVISION = 2**63 - 1

_ROW_COLUMNS = 7
_AUDIT_COLUMNS = 10


class RevlogError(ValueError):
    """A record that must not be applied; the message says why."""


class Entry(NamedTuple):
    """One revision as journaled: its ``revisions`` row and its ``audit`` row."""

    wall: str
    revision: int
    row: tuple[Any, ...]
    audit: tuple[Any, ...]


@dataclass(frozen=True)
class Record:
    offset: int
    end: int
    entries: list[Entry]


@dataclass(frozen=True)
class Scan:
    """What a journal's bytes hold: the good records, where they end, and why reading
    stopped before the end of the data (None when every byte was a good record)."""

    records: list[Record]
    good_end: int
    problem: str | None


def _crc(length: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(length))


def encode_payload(entries: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> bytes:
    """The payload for ``entries``: ``(row, audit)`` pairs."""
    try:
        return orjson.dumps(entries)
    except TypeError:
        # Integers past 64 bits or strings with lone surrogates, which orjson refuses.
        return json.dumps(entries, ensure_ascii=True, allow_nan=False).encode()


def frame(payload: bytes) -> bytes:
    """``payload`` as one record: header and payload."""
    if len(payload) > MAX_PAYLOAD:
        raise RevlogError(f"a record of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    length = struct.pack("<I", len(payload))
    return _HEADER.pack(MAGIC, len(payload), _crc(length, payload)) + payload


def encode(entries: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> bytes:
    """One record holding ``entries``."""
    return frame(encode_payload(entries))


def _text(value: Any, what: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not str:
        raise RevlogError(f"{what} is not a string")


def _number(value: Any, what: str) -> None:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise RevlogError(f"{what} is not a finite number")


def _entry(item: Any, index: int) -> Entry:
    where = f"entry {index}"
    if type(item) is not list or len(item) != 2:
        raise RevlogError(f"{where} is not a [row, audit] pair")
    row, audit = item
    if type(row) is not list or len(row) != _ROW_COLUMNS:
        raise RevlogError(f"{where}: the revision row does not have {_ROW_COLUMNS} values")
    if type(audit) is not list or len(audit) != _AUDIT_COLUMNS:
        raise RevlogError(f"{where}: the audit row does not have {_AUDIT_COLUMNS} values")
    wall, revision, ts, actor, action, body, patch = row
    if type(wall) is not str or not 0 < len(wall) <= MAX_WALL_ID:
        raise RevlogError(f"{where}: the wall id is not a string of 1 to {MAX_WALL_ID} chars")
    if type(revision) is not int or not 0 < revision <= MAX_REVISION:
        raise RevlogError(f"{where}: the revision is not a positive integer")
    _number(ts, f"{where}: the time")
    _text(actor, f"{where}: the actor")
    _text(action, f"{where}: the action")
    _text(body, f"{where}: the state")
    if type(patch) is not int or patch not in (0, 1):
        raise RevlogError(f"{where}: the patch flag is not 0 or 1")
    a_ts, a_actor, session, via, origin, a_action, a_wall, a_rev, result, detail = audit
    _number(a_ts, f"{where}: the audit time")
    for value, what in ((a_actor, "actor"), (via, "via"), (a_action, "action"), (result, "result")):
        _text(value, f"{where}: the audit {what}")
    _text(session, f"{where}: the audit session", optional=True)
    _text(origin, f"{where}: the audit origin", optional=True)
    _text(detail, f"{where}: the audit detail")
    if a_wall != wall or a_rev != revision or type(a_rev) is not int:
        raise RevlogError(f"{where}: the audit row names another revision than its row")
    return Entry(wall, revision, tuple(row), tuple(audit))


def decode_payload(payload: bytes) -> list[Entry]:
    """The entries of one record's payload; RevlogError when it is not a valid one."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # What encode_payload's fallback wrote (lone surrogates), or damage.
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError) as e:
            raise RevlogError(f"the payload is not JSON ({e})") from None
    if type(data) is not list or not data:
        raise RevlogError("the payload is not a non-empty list of entries")
    return [_entry(item, i) for i, item in enumerate(data)]


def scan(data: bytes) -> Scan:
    """Every good record of ``data`` (a journal's bytes) up to the first bad one."""
    records: list[Record] = []
    view = memoryview(data)
    pos = 0
    size = len(data)
    problem: str | None = None
    while pos < size:
        if size - pos < HEADER_SIZE:
            problem = f"torn header at byte {pos} ({size - pos} of {HEADER_SIZE} bytes)"
            break
        magic, length, crc = _HEADER.unpack_from(view, pos)
        if magic != MAGIC:
            problem = f"no record starts at byte {pos} (magic {bytes(magic)!r})"
            break
        if length > MAX_PAYLOAD:
            problem = f"record at byte {pos} claims {length} bytes, over {MAX_PAYLOAD}"
            break
        start = pos + HEADER_SIZE
        end = start + length
        if end > size:
            problem = f"torn record at byte {pos} ({size - start} of {length} bytes)"
            break
        payload = bytes(view[start:end])
        if _crc(struct.pack("<I", length), payload) != crc:
            problem = f"record at byte {pos} fails its CRC"
            break
        try:
            entries = decode_payload(payload)
        except RevlogError as e:
            problem = f"record at byte {pos}: {e}"
            break
        records.append(Record(pos, end, entries))
        pos = end
    return Scan(records, pos, problem)
