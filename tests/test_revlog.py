"""The revision journal's record codec (wallctl/revlog.py): pure functions, no files."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallctl import revlog
from wallctl.revlog import HEADER_SIZE, MAGIC, MAX_PAYLOAD, Entry, RevlogError


def row(wall: str = "main", rev: int = 1, actor: str = "alice") -> tuple[list[Any], list[Any]]:
    ts = 1700000000.0 + rev / 7
    return (
        [wall, rev, ts, actor, "window.move", '{"set":[]}', 1],
        [ts, actor, "s1", "api", None, "window.move", wall, rev, "ok", '{"id":"w1"}'],
    )


def entries(first: int, last: int, wall: str = "main") -> list[tuple[list[Any], list[Any]]]:
    return [row(wall, r) for r in range(first, last + 1)]


def revisions(scan: revlog.Scan) -> list[int]:
    return [e.revision for rec in scan.records for e in rec.entries]


def test_records_roundtrip_with_their_positions() -> None:
    a, b = revlog.encode(entries(1, 3)), revlog.encode(entries(4, 4, "lobby") + entries(4, 5))
    scan = revlog.scan(a + b)
    assert scan.problem is None and scan.good_end == len(a) + len(b)
    assert [(r.offset, r.end) for r in scan.records] == [(0, len(a)), (len(a), len(a) + len(b))]
    first = scan.records[0].entries[0]
    assert first == Entry("main", 1, tuple(row()[0]), tuple(row()[1]))
    assert [(e.wall, e.revision) for e in scan.records[1].entries] == [
        ("lobby", 4),
        ("main", 4),
        ("main", 5),
    ]
    # Floats come back exactly (the audit's ts is compared, not rounded).
    assert first.row[2] == 1700000000.0 + 1 / 7


def test_empty_data_is_an_empty_journal() -> None:
    assert revlog.scan(b"") == revlog.Scan([], 0, None)


def test_header_layout() -> None:
    payload = revlog.encode_payload(entries(1, 1))
    rec = revlog.frame(payload)
    magic, length, crc = struct.unpack("<4sII", rec[:HEADER_SIZE])
    assert (magic, length) == (MAGIC, len(payload))
    assert crc == zlib.crc32(payload, zlib.crc32(struct.pack("<I", length)))
    assert rec[HEADER_SIZE:] == payload


def test_every_torn_tail_keeps_the_whole_records_before_it() -> None:
    a, b = revlog.encode(entries(1, 2)), revlog.encode(entries(3, 3))
    data = a + b
    for cut in range(len(data) + 1):
        scan = revlog.scan(data[:cut])
        whole = [r for r, end in ((2, len(a)), (3, len(data))) if end <= cut]
        assert revisions(scan) == ([1, 2] if whole else []) + ([3] if 3 in whole else [])
        at_boundary = cut in (0, len(a), len(data))
        assert (scan.problem is None) == at_boundary, (cut, scan.problem)
        if not at_boundary:
            assert scan.problem is not None and "torn" in scan.problem
            assert scan.good_end == (len(a) if cut > len(a) else 0)


def test_garbage_after_the_records_stops_the_scan() -> None:
    a = revlog.encode(entries(1, 1))
    scan = revlog.scan(a + b"\x00" * 40)
    assert revisions(scan) == [1] and scan.good_end == len(a)
    assert scan.problem == f"no record starts at byte {len(a)} (magic {bytes(4)!r})"


def test_a_wrong_crc_stops_the_scan_at_that_record() -> None:
    a, b, c = (revlog.encode(entries(i, i)) for i in (1, 2, 3))
    bad = bytearray(b)
    bad[HEADER_SIZE + 5] ^= 0x01
    scan = revlog.scan(a + bytes(bad) + c)
    # The record after it is good, but it is not trusted: it comes after damage.
    assert revisions(scan) == [1]
    assert scan.problem == f"record at byte {len(a)} fails its CRC"


def test_a_damaged_length_is_caught_by_the_crc() -> None:
    a, b = revlog.encode(entries(1, 1)), revlog.encode(entries(2, 2))
    bad = bytearray(a + b)
    struct.pack_into("<I", bad, 4, len(a) - HEADER_SIZE - 1)
    scan = revlog.scan(bytes(bad))
    assert revisions(scan) == [] and scan.problem == "record at byte 0 fails its CRC"


def test_a_huge_length_field_is_refused_without_reading_it() -> None:
    header = struct.pack("<4sII", MAGIC, 0xFFFFFFFF, 0)
    scan = revlog.scan(revlog.encode(entries(1, 1)) + header + b"x" * 10)
    assert revisions(scan) == [1]
    assert scan.problem is not None and f"claims {0xFFFFFFFF} bytes, over {MAX_PAYLOAD}" in (
        scan.problem
    )
    with pytest.raises(RevlogError, match="exceeds"):
        revlog.frame(b"x" * (MAX_PAYLOAD + 1))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", "the payload is not JSON"),
        (b"[1, 2", "the payload is not JSON"),
        (b'{"rows": []}', "not a non-empty list of entries"),
        (b"[]", "not a non-empty list of entries"),
        (b"[[1]]", "entry 0 is not a [row, audit] pair"),
        (b"[" * 5000 + b"]" * 5000, "the payload is not JSON"),
    ],
)
def test_a_payload_that_is_not_entries_is_refused(payload: bytes, reason: str) -> None:
    good = revlog.encode(entries(1, 1))
    scan = revlog.scan(good + revlog.frame(payload))
    assert revisions(scan) == [1]
    assert scan.problem is not None and scan.problem.startswith(f"record at byte {len(good)}: ")
    assert reason in scan.problem


def _broken(change: str) -> list[Any]:
    r, a = (list(x) for x in row())
    if change == "wall-type":
        r[0] = 7
    elif change == "wall-empty":
        r[0] = a[6] = ""
    elif change == "wall-long":
        r[0] = a[6] = "w" * 257
    elif change == "rev-zero":
        r[1] = a[7] = 0
    elif change == "rev-bool":
        r[1] = a[7] = True
    elif change == "rev-huge":
        r[1] = a[7] = 2**63
    elif change == "ts":
        r[2] = "yesterday"
    elif change == "state":
        r[5] = {"windows": []}
    elif change == "patch":
        r[6] = 2
    elif change == "row-short":
        r = r[:6]
    elif change == "audit-long":
        a = [*a, "x"]
    elif change == "audit-other-rev":
        a[7] = 2
    elif change == "audit-other-wall":
        a[6] = "lobby"
    elif change == "session":
        a[2] = 5
    elif change == "detail":
        a[9] = None
    return [[r, a]]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("wall-type", "the wall id is not a string"),
        ("wall-empty", "the wall id is not a string"),
        ("wall-long", "the wall id is not a string"),
        ("rev-zero", "the revision is not a positive integer"),
        ("rev-bool", "the revision is not a positive integer"),
        ("rev-huge", "the revision is not a positive integer"),
        ("ts", "the time is not a finite number"),
        ("state", "the state is not a string"),
        ("patch", "the patch flag is not 0 or 1"),
        ("row-short", "the revision row does not have 7 values"),
        ("audit-long", "the audit row does not have 10 values"),
        ("audit-other-rev", "names another revision"),
        ("audit-other-wall", "names another revision"),
        ("session", "the audit session is not a string"),
        ("detail", "the audit detail is not a string"),
    ],
)
def test_a_malformed_entry_is_refused_with_its_reason(change: str, reason: str) -> None:
    payload = json.dumps(_broken(change)).encode()
    with pytest.raises(RevlogError, match=r"^entry 0[: ]") as e:
        revlog.decode_payload(payload)
    assert reason in str(e.value)
    assert revlog.scan(revlog.frame(payload)).records == []


def test_strings_orjson_refuses_still_roundtrip() -> None:
    """A lone surrogate (possible in text that came through the stdlib json) is written by
    the fallback encoder and read back unchanged."""
    odd = "op\ud800x"
    payload = revlog.encode_payload([row(actor=odd)])
    (entry,) = revlog.decode_payload(payload)
    assert entry.row[3] == odd and entry.audit[1] == odd


# --- property-based ----------------------------------------------------------------------------

_text = st.text(max_size=20)
_rows = st.builds(
    lambda wall, rev, ts, actor, session, body, patch: (
        [wall, rev, ts, actor, "window.move", body, patch],
        [ts, actor, session, "api", None, "window.move", wall, rev, "ok", "{}"],
    ),
    st.text(min_size=1, max_size=30),
    st.integers(1, 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
    st.none() | _text,
    _text,
    st.sampled_from([0, 1]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_rows, min_size=1, max_size=4), max_size=4), st.binary(max_size=64))
def test_any_records_roundtrip_and_garbage_after_them_is_cut(
    groups: list[list[tuple[list[Any], list[Any]]]], tail: bytes
) -> None:
    data = b"".join(revlog.encode(g) for g in groups)
    scan = revlog.scan(data + tail)
    # Garbage may by chance hold whole records only if it starts with the magic.
    kept = scan.records[: len(groups)]
    assert [[(list(e.row), list(e.audit)) for e in r.entries] for r in kept] == [
        [(list(r), list(a)) for r, a in g] for g in groups
    ]
    assert scan.good_end >= len(data)
    if not tail:
        assert scan.problem is None and scan.good_end == len(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_the_scanner_survives_any_bytes(data: bytes) -> None:
    scan = revlog.scan(data)
    assert 0 <= scan.good_end <= len(data)
    pos = 0
    for rec in scan.records:
        assert rec.offset == pos and rec.end > pos
        pos = rec.end
    assert pos == scan.good_end
    assert (scan.problem is None) == (scan.good_end == len(data))


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.floats() | _text, st.lists, max_leaves=20))
def test_any_json_payload_decodes_or_is_refused(value: Any) -> None:
    # The stdlib writes what orjson will not (NaN, integers past 64 bits): the decoder's
    # fallback reads those, and the checks must still refuse them.
    payload = json.dumps(value).encode()
    try:
        got = revlog.decode_payload(payload)
    except RevlogError:
        return
    assert got and all(isinstance(e, Entry) for e in got)
