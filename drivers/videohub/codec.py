"""Blackmagic Videohub Ethernet Protocol (TCP 9990), sans-I/O.

Written from Blackmagic's "Videohub Developer Information" (protocol 2.x). The server
talks in *blocks*: an upper-case header ending in ``:``, body lines, and a blank line.
On connect it dumps its whole state (the prelude, closed by ``END PRELUDE:`` since 2.7);
afterwards it resends a block, holding only the changed items, whenever any client (or
the front panel) changes a route, a label or a lock. A client changes something by
sending a block of the same form and gets ``ACK`` or ``NAK`` for it; a header with an
empty body asks for that block again; ``PING:`` is a no-op answered with ``ACK``.
Clients must ignore blocks and lines they do not recognise.

:class:`Decoder` turns bytes from the server into events; the ``encode_*`` functions turn
requests into bytes, refusing anything that could break out of its block (a newline in a
label, an index past the device's size).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from drivers.errors import InvalidParams

PORT = 9990

# ---- grammar tables (shared with the simulator) ------------------------------------

PROTOCOL_PREAMBLE = "PROTOCOL PREAMBLE"
VIDEOHUB_DEVICE = "VIDEOHUB DEVICE"
INPUT_LABELS = "INPUT LABELS"
OUTPUT_LABELS = "OUTPUT LABELS"
MONITORING_OUTPUT_LABELS = "MONITORING OUTPUT LABELS"
SERIAL_PORT_LABELS = "SERIAL PORT LABELS"
FRAME_LABELS = "FRAME LABELS"
VIDEO_OUTPUT_ROUTING = "VIDEO OUTPUT ROUTING"
VIDEO_MONITORING_OUTPUT_ROUTING = "VIDEO MONITORING OUTPUT ROUTING"
SERIAL_PORT_ROUTING = "SERIAL PORT ROUTING"
PROCESSING_UNIT_ROUTING = "PROCESSING UNIT ROUTING"
FRAME_BUFFER_ROUTING = "FRAME BUFFER ROUTING"
VIDEO_OUTPUT_LOCKS = "VIDEO OUTPUT LOCKS"
MONITORING_OUTPUT_LOCKS = "MONITORING OUTPUT LOCKS"
SERIAL_PORT_LOCKS = "SERIAL PORT LOCKS"
PROCESSING_UNIT_LOCKS = "PROCESSING UNIT LOCKS"
FRAME_BUFFER_LOCKS = "FRAME BUFFER LOCKS"
CONFIGURATION = "CONFIGURATION"
END_PRELUDE = "END PRELUDE"
PING = "PING"
ACK = "ACK"
NAK = "NAK"

LABEL_BLOCKS = (
    INPUT_LABELS,
    OUTPUT_LABELS,
    MONITORING_OUTPUT_LABELS,
    SERIAL_PORT_LABELS,
    FRAME_LABELS,
)
ROUTING_BLOCKS = (
    VIDEO_OUTPUT_ROUTING,
    VIDEO_MONITORING_OUTPUT_ROUTING,
    SERIAL_PORT_ROUTING,
    PROCESSING_UNIT_ROUTING,
    FRAME_BUFFER_ROUTING,
)
LOCK_BLOCKS = (
    VIDEO_OUTPUT_LOCKS,
    MONITORING_OUTPUT_LOCKS,
    SERIAL_PORT_LOCKS,
    PROCESSING_UNIT_LOCKS,
    FRAME_BUFFER_LOCKS,
)
# Blocks a client may ask the server to resend (header + blank line).
REQUESTABLE_BLOCKS = (
    PROTOCOL_PREAMBLE,
    VIDEOHUB_DEVICE,
    *LABEL_BLOCKS,
    *ROUTING_BLOCKS,
    *LOCK_BLOCKS,
    CONFIGURATION,
)

# VIDEOHUB DEVICE keys.
DEVICE_PRESENT = "Device present"
MODEL_NAME = "Model name"
FRIENDLY_NAME = "Friendly name"
UNIQUE_ID = "Unique ID"
VIDEO_INPUTS = "Video inputs"
VIDEO_PROCESSING_UNITS = "Video processing units"
VIDEO_OUTPUTS = "Video outputs"
VIDEO_MONITORING_OUTPUTS = "Video monitoring outputs"
SERIAL_PORTS = "Serial ports"
PROTOCOL_VERSION_KEY = "Version"
# "Device present" values.
PRESENT_TRUE = "true"
PRESENT_FALSE = "false"
PRESENT_NEEDS_UPDATE = "needs_update"

LINE_END = "\n"


class LockState(StrEnum):
    """A port's lock as the server reports it to *this* client."""

    OWNED = "O"  # locked by this client
    LOCKED = "L"  # locked by another client
    UNLOCKED = "U"


class LockRequest(StrEnum):
    """What a client may ask for a port."""

    LOCK = "O"
    UNLOCK = "U"
    FORCE_UNLOCK = "F"  # break another client's lock


# ---- limits -------------------------------------------------------------------------

# The largest Videohub (Universal 288) has 288 ports; a block of a few thousand lines is
# already hostile, as is a line of more than a few kilobytes.
MAX_LINE_BYTES = 4096
MAX_BLOCK_LINES = 4096
MAX_INDEX = 9999
# Not documented by Blackmagic; hubs keep about 64 characters of a name, so keep the wire
# sane and the API honest about it.
MAX_LABEL_CHARS = 64


# ---- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """The server accepted the client's last block."""


@dataclass(frozen=True)
class Nak:
    """The server did not understand or could not act on the client's last block."""


@dataclass(frozen=True)
class Preamble:
    version: str


@dataclass(frozen=True)
class DeviceInfo:
    present: str
    model: str | None = None
    friendly_name: str | None = None
    unique_id: str | None = None
    video_inputs: int | None = None
    video_outputs: int | None = None
    monitoring_outputs: int | None = None
    serial_ports: int | None = None
    processing_units: int | None = None


@dataclass(frozen=True)
class Labels:
    header: str
    labels: dict[int, str]


@dataclass(frozen=True)
class Routes:
    header: str
    routes: dict[int, int]  # destination -> source


@dataclass(frozen=True)
class Locks:
    header: str
    locks: dict[int, LockState]


@dataclass(frozen=True)
class Configuration:
    settings: dict[str, str]


@dataclass(frozen=True)
class EndPrelude:
    """The initial dump is complete (protocol 2.7 and later)."""


@dataclass(frozen=True)
class UnknownBlock:
    header: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Garbage:
    """Bytes that could not be part of any block (the decoder resynchronised after them)."""

    reason: str
    data: bytes = field(repr=False)


Event = (
    Ack
    | Nak
    | Preamble
    | DeviceInfo
    | Labels
    | Routes
    | Locks
    | Configuration
    | EndPrelude
    | UnknownBlock
    | Garbage
)


# ---- text hygiene ---------------------------------------------------------------------

# Control and format characters (C0/C1, DEL, bidi overrides, zero-width tricks), line and
# paragraph separators, surrogates: none belongs in a port name, and several could end a
# block early or forge a log line.
_STRIP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
# Line-like breaks become a space so "Cam\nA" reads "Cam A", not "CamA".
_BREAKS = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029")


def clean_label(text: str) -> str:
    """``text`` without control/format characters, whitespace runs folded to one space."""
    out = []
    for ch in text:
        if ch in _BREAKS:
            out.append(" ")
            continue
        cat = unicodedata.category(ch)
        if cat in _STRIP_CATEGORIES:
            continue
        out.append(" " if cat == "Zs" else ch)
    return " ".join("".join(out).split())


# ---- decoder --------------------------------------------------------------------------


def _is_header(line: str) -> bool:
    if not line.endswith(":") or len(line) < 2:
        return False
    name = line[:-1]
    return all(c.isupper() or c.isdigit() or c in " _-" for c in name) and any(
        c.isupper() for c in name
    )


def _index(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        return None
    value = int(text)
    return value if value <= MAX_INDEX else None


class Decoder:
    """Bytes from a Videohub server in, events out.

    ``feed`` may be called with any slicing of the stream (a byte at a time is fine);
    unrecognised lines inside known blocks are counted in ``ignored_lines`` and
    otherwise ignored, as the protocol asks.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._header: str | None = None
        self._lines: list[str] = []
        self._discarding_line = False  # inside an overlong line: drop up to its newline
        self._discarding_block = False  # inside an overlong block: drop up to blank line
        self.ignored_lines = 0

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE_BYTES:
                    events.append(Garbage("line too long", bytes(self._buf[:64])))
                    self._buf.clear()
                    self._discarding_line = True
                break
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._discarding_line:
                self._discarding_line = False
                continue
            if len(raw) > MAX_LINE_BYTES:
                events.append(Garbage("line too long", raw[:64]))
                continue
            self._line(raw, events)
        return events

    def reset(self) -> None:
        """Forget a partial block (the connection was reopened)."""
        self._buf.clear()
        self._header, self._lines = None, []
        self._discarding_line = self._discarding_block = False

    def _line(self, raw: bytes, events: list[Event]) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        line = raw.decode("utf-8", errors="replace")
        if self._discarding_block:
            if line == "":
                self._discarding_block = False
            return
        if self._header is None:
            if line == "":
                return
            if line == ACK:
                events.append(Ack())
            elif line == NAK:
                events.append(Nak())
            elif _is_header(line):
                self._header = line[:-1]
                self._lines = []
            else:
                events.append(Garbage("line outside a block", raw[:64]))
            return
        if line == "":
            header, lines = self._header, self._lines
            self._header, self._lines = None, []
            events.append(self._block(header, lines))
            return
        if len(self._lines) >= MAX_BLOCK_LINES:
            events.append(Garbage(f"block {self._header} too long", raw[:64]))
            self._header, self._lines = None, []
            self._discarding_block = True
            return
        self._lines.append(line)

    def _block(self, header: str, lines: list[str]) -> Event:
        if header in LABEL_BLOCKS:
            return Labels(header, self._labels(lines))
        if header in ROUTING_BLOCKS:
            return Routes(header, self._pairs(lines))
        if header in LOCK_BLOCKS:
            return Locks(header, self._locks(lines))
        if header == PROTOCOL_PREAMBLE:
            fields = self._fields(lines)
            return Preamble(fields.get(PROTOCOL_VERSION_KEY, ""))
        if header == VIDEOHUB_DEVICE:
            return self._device(self._fields(lines))
        if header == CONFIGURATION:
            return Configuration(self._fields(lines))
        if header == END_PRELUDE:
            return EndPrelude()
        return UnknownBlock(header, tuple(lines))

    def _labels(self, lines: list[str]) -> dict[int, str]:
        out: dict[int, str] = {}
        for line in lines:
            num, _, text = line.partition(" ")
            idx = _index(num)
            if idx is None:
                self.ignored_lines += 1
                continue
            out[idx] = clean_label(text)
        return out

    def _pairs(self, lines: list[str]) -> dict[int, int]:
        out: dict[int, int] = {}
        for line in lines:
            parts = line.split(" ")
            if len(parts) != 2:
                self.ignored_lines += 1
                continue
            dst, src = _index(parts[0]), _index(parts[1])
            if dst is None or src is None:
                self.ignored_lines += 1
                continue
            out[dst] = src
        return out

    def _locks(self, lines: list[str]) -> dict[int, LockState]:
        out: dict[int, LockState] = {}
        for line in lines:
            parts = line.split(" ")
            idx = _index(parts[0]) if len(parts) == 2 else None
            if idx is None or parts[1] not in ("O", "L", "U"):
                self.ignored_lines += 1
                continue
            out[idx] = LockState(parts[1])
        return out

    def _fields(self, lines: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in lines:
            key, sep, value = line.partition(":")
            if not sep:
                self.ignored_lines += 1
                continue
            out[key.strip()] = clean_label(value)
        return out

    def _device(self, fields: dict[str, str]) -> DeviceInfo:
        def number(key: str) -> int | None:
            value = fields.get(key)
            return _index(value) if value is not None else None

        return DeviceInfo(
            present=fields.get(DEVICE_PRESENT, PRESENT_TRUE).lower(),
            model=fields.get(MODEL_NAME),
            friendly_name=fields.get(FRIENDLY_NAME),
            unique_id=fields.get(UNIQUE_ID),
            video_inputs=number(VIDEO_INPUTS),
            video_outputs=number(VIDEO_OUTPUTS),
            monitoring_outputs=number(VIDEO_MONITORING_OUTPUTS),
            serial_ports=number(SERIAL_PORTS),
            processing_units=number(VIDEO_PROCESSING_UNITS),
        )


# ---- encoders (client -> server) ---------------------------------------------------


def _block(header: str, lines: list[str]) -> bytes:
    return (header + ":" + LINE_END + "".join(line + LINE_END for line in lines) + LINE_END).encode(
        "utf-8"
    )


def _check_index(value: object, limit: int | None, field: str, what: str) -> int:
    # bool is an int to Python but never a port number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParams(f"{what} must be an integer", field)
    if value < 0:
        raise InvalidParams(f"{what} {value} is negative (ports count from 0)", field)
    bound = MAX_INDEX + 1 if limit is None else limit
    if value >= bound:
        raise InvalidParams(f"{what} {value} out of range 0..{bound - 1}", field)
    return value


def encode_routes(
    routes: Mapping[int, int],
    *,
    outputs: int | None = None,
    inputs: int | None = None,
    header: str = VIDEO_OUTPUT_ROUTING,
) -> bytes:
    """Route each destination (zero-based) to a source, in one block (one ACK)."""
    if header not in ROUTING_BLOCKS:
        raise InvalidParams(f"not a routing block: {header!r}", "header")
    if not routes:
        raise InvalidParams("no routes given", "routes")
    lines = []
    for dst, src in routes.items():
        d = _check_index(dst, outputs, f"routes[{dst!r}]", "output")
        s = _check_index(src, inputs, f"routes[{dst!r}]", "input")
        lines.append(f"{d} {s}")
    return _block(header, lines)


def encode_labels(
    labels: Mapping[int, str], *, count: int | None = None, header: str = OUTPUT_LABELS
) -> bytes:
    """Rename ports; control characters are stripped, an empty or overlong name refused."""
    if header not in LABEL_BLOCKS:
        raise InvalidParams(f"not a label block: {header!r}", "header")
    if not labels:
        raise InvalidParams("no labels given", "labels")
    lines = []
    for idx, text in labels.items():
        i = _check_index(idx, count, f"labels[{idx!r}]", "port")
        if not isinstance(text, str):
            raise InvalidParams("label must be a string", f"labels[{idx!r}]")
        clean = clean_label(text)
        if not clean:
            raise InvalidParams(
                "label is empty once control characters are removed", f"labels[{idx!r}]"
            )
        if len(clean) > MAX_LABEL_CHARS:
            raise InvalidParams(
                f"label longer than {MAX_LABEL_CHARS} characters", f"labels[{idx!r}]"
            )
        lines.append(f"{i} {clean}")
    return _block(header, lines)


def encode_locks(
    locks: Mapping[int, LockRequest],
    *,
    count: int | None = None,
    header: str = VIDEO_OUTPUT_LOCKS,
) -> bytes:
    if header not in LOCK_BLOCKS:
        raise InvalidParams(f"not a lock block: {header!r}", "header")
    if not locks:
        raise InvalidParams("no locks given", "locks")
    lines = []
    for idx, req in locks.items():
        i = _check_index(idx, count, f"locks[{idx!r}]", "port")
        try:
            r = LockRequest(req)
        except ValueError:
            raise InvalidParams(
                f"lock must be one of O (lock), U (unlock), F (force unlock), not {req!r}",
                f"locks[{idx!r}]",
            ) from None
        lines.append(f"{i} {r.value}")
    return _block(header, lines)


def encode_request(header: str) -> bytes:
    """Ask the server to resend one whole block."""
    if header not in REQUESTABLE_BLOCKS:
        raise InvalidParams(f"not a block the server can resend: {header!r}", "header")
    return _block(header, [])


def encode_ping() -> bytes:
    return _block(PING, [])
