"""Extron SIS (Simple Instruction Set), sans-I/O: commands -> bytes, bytes -> events.

From Extron's programmer's guides (CrossPoint, DXP HD 4K Plus, MAV, XTP II). Commands
are short ASCII strings that execute on their last character (``1*3!`` ties input 1 to
output 3, audio and video); ``Esc`` commands end with their letters and we add a CR,
which the switcher ignores. Replies end CR LF. The Telnet port first sends a copyright
banner and a date line, then ``Password:`` (no line end) when a password is set.

The grammar tables (level symbols, tags, errors) are shared with the simulator; the
parser below is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ESC = "\x1b"
CRLF = b"\r\n"

# Level in wallctl terms -> the SIS tie character.
LEVEL_SYMBOLS = {"av": "!", "video": "%", "audio": "$"}
# Tie character -> the tag the switcher answers with.
SYMBOL_TAGS = {"!": "All", "%": "Vid", "&": "RGB", "$": "Aud"}
# Answer tag -> level in wallctl terms (RGB ties are video ties on video matrices).
TAG_LEVELS = {"All": "av", "Vid": "video", "RGB": "video", "Aud": "audio"}

ERRORS = {
    "E01": "invalid input number",
    "E10": "invalid command",
    "E11": "invalid preset number",
    "E12": "invalid output number",
    "E13": "invalid parameter (out of range)",
    "E14": "not valid for this configuration",
    "E17": "system timed out",
    "E21": "invalid room number",
    "E22": "busy",
    "E24": "privilege violation",
    "E25": "device not present",
    "E26": "maximum number of connections exceeded",
    "E28": "bad filename or file not found",
}

VERBOSE_MODES = {
    0: "none (Telnet default)",
    1: "verbose: unsolicited change reports (RS-232 default)",
    2: "tagged responses to queries",
    3: "verbose and tagged",
}

PASSWORD_PROMPT = "Password:"
# A line longer than this without an end is noise; it is dropped.
MAX_LINE = 512


# --- events (device -> host) -------------------------------------------------------------


@dataclass(frozen=True)
class Banner:
    """``(c) Copyright 20nn, Extron Electronics, <model>, Vn.nn, <part>`` (power-up/connect)."""

    text: str
    model: str


@dataclass(frozen=True)
class PasswordPrompt:
    pass


@dataclass(frozen=True)
class LoginOk:
    level: str  # "Administrator" or "User"


@dataclass(frozen=True)
class TieReport:
    """``Out03 In01 All`` (a tie made, a tagged tie read, or a verbose change report);
    ``In05 All`` (an input tied to all outputs: ``output`` is None)."""

    input: int
    output: int | None
    level: str  # av, video, audio


@dataclass(frozen=True)
class QuickAck:
    """``Qik``: a quick multiple tie done, or (unsolicited) a front-panel change."""


@dataclass(frozen=True)
class Number:
    """A bare number: an untagged tie read (``01``), or a version (``1.05``) as text."""

    value: int


@dataclass(frozen=True)
class Verbose:
    mode: int


@dataclass(frozen=True)
class Info:
    """``V16X16 A16X16``: video and audio size (inputs x outputs)."""

    video_inputs: int
    video_outputs: int
    audio_inputs: int | None
    audio_outputs: int | None


@dataclass(frozen=True)
class PresetRecalled:
    preset: int


@dataclass(frozen=True)
class Error:
    code: str

    @property
    def reason(self) -> str:
        return ERRORS.get(self.code, "error")


@dataclass(frozen=True)
class Line:
    """Any other line (firmware version, date line, part number, unknown text)."""

    text: str


@dataclass(frozen=True)
class Garbage:
    """Bytes dropped: an over-long line, or bytes that are not text."""

    size: int


Event = (
    Banner
    | PasswordPrompt
    | LoginOk
    | TieReport
    | QuickAck
    | Number
    | Verbose
    | Info
    | PresetRecalled
    | Error
    | Line
    | Garbage
)

_TIE = re.compile(r"^Out\s*(\d{1,4})\s+In\s*(\d{1,4})\s+(All|Vid|RGB|Aud)$", re.IGNORECASE)
_TIE_ALL = re.compile(r"^In\s*(\d{1,4})\s+(All|Vid|RGB|Aud)$", re.IGNORECASE)
_INFO = re.compile(r"^V(\d{1,4})X(\d{1,4})(?:\s+A(\d{1,4})X(\d{1,4}))?$", re.IGNORECASE)
_ERROR = re.compile(r"^E(\d{2})$")
_BANNER = re.compile(r"^\(c\)\s*Copyright\s+\d{4},\s*Extron Electronics,\s*([^,]*)", re.IGNORECASE)


_TAG_LEVELS_LOWER = {tag.lower(): level for tag, level in TAG_LEVELS.items()}


def _tag_level(tag: str) -> str:
    return _TAG_LEVELS_LOWER[tag.lower()]


class ExtronCodec:
    """Parse what a switcher sends. ``feed`` never raises: unknown text is a ``Line``."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Event]:
        self._buf.extend(data)
        events: list[Event] = []
        while True:
            cut = _line_end(self._buf)
            if cut is None:
                break
            end, skip = cut
            raw = bytes(self._buf[:end])
            del self._buf[: end + skip]
            event = parse_line(raw)
            if event is not None:
                events.append(event)
        # The password prompt has no line end: recognise it as it stands.
        tail = self._buf.decode("latin-1").strip()
        if tail.endswith(PASSWORD_PROMPT):
            self._buf.clear()
            events.append(PasswordPrompt())
        elif len(self._buf) > MAX_LINE:
            events.append(Garbage(len(self._buf)))
            self._buf.clear()
        return events


def _line_end(buf: bytearray) -> tuple[int, int] | None:
    for i, b in enumerate(buf):
        if b in (0x0D, 0x0A):
            skip = 2 if b == 0x0D and i + 1 < len(buf) and buf[i + 1] == 0x0A else 1
            return i, skip
    return None


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
    if m := _TIE.match(text):
        return TieReport(int(m[2]), int(m[1]), _tag_level(m[3]))
    if m := _TIE_ALL.match(text):
        return TieReport(int(m[1]), None, _tag_level(m[2]))
    if text.lower() == "qik":
        return QuickAck()
    if text.isdigit() and len(text) <= 4:
        return Number(int(text))
    if m := _ERROR.match(text):
        return Error(f"E{m[1]}")
    if text.lower().startswith("vrb") and text[3:].isdigit():
        return Verbose(int(text[3:]))
    if m := _INFO.match(text):
        return Info(
            int(m[1]),
            int(m[2]),
            int(m[3]) if m[3] else None,
            int(m[4]) if m[4] else None,
        )
    if text.lower().startswith("login "):
        return LoginOk(text[6:].strip())
    if text.lower().startswith("rpr") and text[3:].isdigit():
        return PresetRecalled(int(text[3:]))
    if m := _BANNER.match(text):
        return Banner(text, m[1].strip())
    if text == PASSWORD_PROMPT:
        return PasswordPrompt()
    return Line(text)


# --- commands (host -> device) -----------------------------------------------------------


def _num(n: int) -> str:
    if not 0 <= n <= 9999:
        raise ValueError(f"number {n} out of range")
    return str(n)


def tie(input_: int, output: int, level: str) -> bytes:
    """``1*3!``: tie ``input_`` (0 = disconnect) to ``output`` on ``level``."""
    return f"{_num(input_)}*{_num(output)}{LEVEL_SYMBOLS[level]}".encode()


def tie_all(input_: int, level: str) -> bytes:
    """``5*!``: tie ``input_`` to every output."""
    return f"{_num(input_)}*{LEVEL_SYMBOLS[level]}".encode()


def quick_ties(ties: list[tuple[int, int, str]]) -> bytes:
    """``Esc +Q 3*4! 3*5% ...``: several ties switched at once, answered ``Qik``."""
    body = "".join(f"{_num(i)}*{_num(o)}{LEVEL_SYMBOLS[lvl]}" for i, o, lvl in ties)
    return f"{ESC}+Q{body}\r".encode()


def read_tie(output: int, level: str) -> bytes:
    """``3%``: which input feeds ``output`` on ``level`` (video or audio)."""
    if level not in ("video", "audio"):
        raise ValueError("read a video or an audio tie")
    return f"{_num(output)}{LEVEL_SYMBOLS[level]}".encode()


def set_verbose(mode: int) -> bytes:
    if mode not in VERBOSE_MODES:
        raise ValueError(f"verbose mode must be one of {sorted(VERBOSE_MODES)}")
    return f"{ESC}{mode}CV\r".encode()


def recall_preset(preset: int) -> bytes:
    """``5.``: recall global preset 5 (answered ``Rpr05``)."""
    return f"{_num(preset)}.".encode()


def info() -> bytes:
    return b"I"


def firmware() -> bytes:
    return b"Q"


def password(secret: str) -> bytes:
    if any(ord(c) < 32 or ord(c) == 127 for c in secret) or not secret.isascii():
        raise ValueError("a password must be printable ASCII")
    return secret.encode() + b"\r"
