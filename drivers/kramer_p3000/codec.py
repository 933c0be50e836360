"""Kramer Protocol 3000, sans-I/O: commands -> bytes, bytes -> events.

From Kramer's Protocol 3000 documents. The host sends ``#[nn@]CMD params CR`` (at most
64 characters; several commands may be chained with ``|``); the device answers each with
``~nn@CMD params OK CR LF`` or ``~nn@CMD params ERR00x``, answers queries with
``~nn@CMD params`` and reports changes made elsewhere (front panel, another controller)
the same way, unprompted. ``#`` alone is the handshake (``~nn@ OK``). Routes are
``in>out``, input 0 disconnects, output ``*`` means every output.

The grammar tables are shared with the simulator; the parser below is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_COMMAND = 64  # characters, from '#' to CR included
MAX_LINE = 1024

# Level in wallctl terms -> routing command; short forms the device also accepts.
LEVEL_COMMANDS = {"av": "AV", "video": "VID", "audio": "AUD"}
SHORT_FORMS = {"V": "VID", "A": "AUD"}
COMMAND_LEVELS = {cmd: level for level, cmd in LEVEL_COMMANDS.items()}

ERRORS = {
    "ERR001": "syntax error",
    "ERR002": "command not available for this device",
    "ERR003": "parameter out of range",
    "ERR004": "unauthorized access (log in first)",
}
# Characters with a meaning in the protocol: never inside a parameter we send.
RESERVED = "#|,>@~\r\n"


@dataclass(frozen=True)
class Reply:
    """``~01@VID 1>2 OK``: ``command`` ("" for the handshake), ``params`` as text, and
    ``result``: "OK", an error code ("ERR003"), or "" for a query answer or report."""

    machine: int
    command: str
    params: str
    result: str

    @property
    def error(self) -> str | None:
        return self.result if self.result.startswith("ERR") else None

    @property
    def reason(self) -> str:
        return ERRORS.get(self.result, "error")


@dataclass(frozen=True)
class StartMessage:
    """Sent at power-up: ``Kramer Electronics LTD., Device Model <m>, Version <v>``."""

    text: str


@dataclass(frozen=True)
class Line:
    text: str


@dataclass(frozen=True)
class Garbage:
    size: int


Event = Reply | StartMessage | Line | Garbage

_REPLY = re.compile(r"^~(\d{1,3})@(\S*)(?:\s+(.*?))?\s*$")
_RESULT = re.compile(r"^(?:(.*?)\s+)?(OK|ERR\d{3})$|^(OK|ERR\d{3})$")
_ROUTE = re.compile(r"^(\d{1,4})>(\d{1,4}|\*)$")


class KramerCodec:
    """Parse what a device sends; never raises."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Event]:
        self._buf.extend(data)
        events: list[Event] = []
        while True:
            idx = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
            if not idx:
                break
            end = min(idx)
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            event = parse_line(raw)
            if event is not None:
                events.append(event)
        if len(self._buf) > MAX_LINE:
            events.append(Garbage(len(self._buf)))
            self._buf.clear()
        return events


def parse_line(raw: bytes) -> Event | None:
    if len(raw) > MAX_LINE:
        return Garbage(len(raw))
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return Garbage(len(raw))
    if not text:
        return None
    if not text.isprintable():
        return Garbage(len(raw))
    m = _REPLY.match(text)
    if m:
        machine, command, rest = int(m[1]), m[2].upper(), (m[3] or "").strip()
        params, result = rest, ""
        r = _RESULT.match(rest)
        if r:
            if r[3]:
                params, result = "", r[3]
            else:
                params, result = (r[1] or "").strip(), r[2]
        elif command in ("OK",) or command.startswith("ERR"):
            # "~01@ERR001" (no command named): the whole line failed.
            command, result = "", command
        return Reply(machine, command, params, result)
    if text.lower().startswith("kramer electronics"):
        return StartMessage(text)
    return Line(text)


def parse_routes(params: str) -> list[tuple[int, int | None]] | None:
    """``"1>2,3>*"`` -> [(1, 2), (3, None)] (None = every output); None when malformed."""
    out: list[tuple[int, int | None]] = []
    for part in params.split(","):
        m = _ROUTE.match(part.strip())
        if not m:
            return None
        out.append((int(m[1]), None if m[2] == "*" else int(m[2])))
    return out


def parse_io(params: str) -> tuple[int, int] | None:
    """``"IN 16,OUT 16"`` -> (16, 16)."""
    m = re.match(r"^IN\s*(\d{1,4})\s*,\s*OUT\s*(\d{1,4})$", params.strip(), re.IGNORECASE)
    return (int(m[1]), int(m[2])) if m else None


# --- commands (host -> device) ---------------------------------------------------------


def _frame(body: str, machine: int | None) -> bytes:
    prefix = f"{machine:02d}@" if machine is not None else ""
    data = f"#{prefix}{body}\r"
    if len(data) > MAX_COMMAND:
        raise ValueError(f"command of {len(data)} characters (the device takes {MAX_COMMAND})")
    if any(ord(c) < 32 for c in data[:-1]) or not data.isascii():
        raise ValueError("control or non-ASCII character in a command")
    return data.encode()


def handshake(machine: int | None = None) -> bytes:
    return _frame("", machine)


def route(level: str, ties: list[tuple[int, int | None]], machine: int | None = None) -> bytes:
    """``#VID 1>2,3>4``; output None is ``*`` (every output)."""
    pairs = ",".join(f"{int(i)}>{'*' if o is None else int(o)}" for i, o in ties)
    return _frame(f"{LEVEL_COMMANDS[level]} {pairs}", machine)


def route_chunks(
    level: str, ties: list[tuple[int, int | None]], machine: int | None = None
) -> list[tuple[bytes, list[tuple[int, int | None]]]]:
    """Split ``ties`` into as few commands as fit the 64-character limit."""
    chunks: list[tuple[bytes, list[tuple[int, int | None]]]] = []
    current: list[tuple[int, int | None]] = []
    for tie in ties:
        try:
            route(level, [*current, tie], machine)
            current.append(tie)
        except ValueError:
            if not current:
                raise
            chunks.append((route(level, current, machine), current))
            current = [tie]
    if current:
        chunks.append((route(level, current, machine), current))
    return chunks


def query_route(level: str, output: int | None, machine: int | None = None) -> bytes:
    """``#VID? 3`` (one output) or ``#VID? *`` (all outputs)."""
    target = "*" if output is None else str(int(output))
    return _frame(f"{LEVEL_COMMANDS[level]}? {target}", machine)


def info_io(machine: int | None = None) -> bytes:
    return _frame("INFO-IO?", machine)


def model(machine: int | None = None) -> bytes:
    return _frame("MODEL?", machine)


def login(level: str, secret: str, machine: int | None = None) -> bytes:
    for value in (level, secret):
        if any(c in RESERVED or c == " " for c in value):
            raise ValueError("login values must not contain spaces or # | , > @ ~")
    return _frame(f"LOGIN {level},{secret}", machine)
