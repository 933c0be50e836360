"""LG commercial displays over RS-232C ("ka", "xb", ... commands), sans-I/O.

Written from the "RS-232C" / "Controlling multiple products" chapters of LG's signage
owner's manuals. A request is ASCII::

    [Command1][Command2][ ][Set ID][ ][Data][Cr]          e.g. "ka 01 01\\r"

with the set ID and data in hexadecimal (``ff`` as data reads the current value). The
display answers::

    [Command2][ ][Set ID][ ][OK|NG][Data][x]              e.g. "a 01 OK01x"

ending in a literal ``x`` and no line break. Set ID ``00`` addresses every display on a
daisy chain, and then none answers. While a display powers on it answers only once the
power-on processing is over, so the first reply after ``ka .. 01`` can take seconds.

:class:`Decoder` turns bytes into :class:`Reply` events (finding its way back after
garbage); ``encode`` builds requests from the grammar table after range checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from drivers.errors import InvalidParams

BAUD = 9600
# Some models (webOS signage) also take the same commands on TCP 9761.
PORT = 9761

# ---- grammar tables (shared with the simulator) ------------------------------------

ALL_SETS = 0x00
MAX_SET_ID = 0xFF
READ = 0xFF
TERMINATOR = b"\r"
REPLY_END = b"x"
OK = "OK"
NG = "NG"


class Cmd(Enum):
    """Each command as (Command1, Command2, lowest data, highest data)."""

    POWER = ("k", "a", 0x00, 0x01)
    SCREEN_MUTE = ("k", "d", 0x00, 0x10)
    VOLUME_MUTE = ("k", "e", 0x00, 0x01)
    VOLUME = ("k", "f", 0x00, 0x64)
    ABNORMAL_STATE = ("k", "z", READ, READ)
    INPUT = ("x", "b", 0x00, 0xFE)
    TILE_MODE = ("d", "d", 0x00, 0xFF)
    TILE_ID = ("d", "i", 0x01, 0xE1)

    @property
    def code(self) -> str:
        return self.value[0] + self.value[1]

    @property
    def reply_letter(self) -> str:
        return str(self.value[1])

    @property
    def low(self) -> int:
        return int(self.value[2])

    @property
    def high(self) -> int:
        return int(self.value[3])


COMMANDS_BY_CODE = {c.code: c for c in Cmd}


class Input(IntEnum):
    """``xb`` data: the high nibble is the kind of input, the low nibble its number."""

    AV = 0x20
    COMPONENT = 0x40
    RGB = 0x60
    DVI_D_PC = 0x70
    DVI_D = 0x80
    HDMI1 = 0x90
    HDMI2 = 0x91
    HDMI3 = 0x92
    HDMI1_PC = 0xA0
    HDMI2_PC = 0xA1
    HDMI3_PC = 0xA2
    DISPLAYPORT = 0xC0
    DISPLAYPORT_PC = 0xD0


# ``ke`` is inverted on the wire: 00 means the sound is muted.
VOLUME_MUTE_ON = 0x00
VOLUME_MUTE_OFF = 0x01
# ``kd`` screen mute: 00 picture on, 01 picture off; 10 video-out mute on some models.
SCREEN_MUTE_OFF = 0x00
SCREEN_MUTE_ON = 0x01
# ``dd`` tile mode: high nibble columns, low nibble rows; 00/01/10/11 mean off.
TILE_MAX = 15


class AbnormalState(IntEnum):
    """``kz`` answers why a display is off (or that it is fine)."""

    NORMAL = 0x00
    NO_SIGNAL = 0x01
    OFF_BY_REMOTE = 0x02
    OFF_BY_SLEEP_TIMER = 0x03
    OFF_BY_RS232 = 0x04
    OFF_BY_OFF_TIMER = 0x08
    OFF_BY_AUTO_OFF = 0x09


# ---- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    letter: str  # Command2 of the request answered
    set_id: int
    ok: bool
    data: tuple[int, ...]


@dataclass(frozen=True)
class Garbage:
    reason: str
    data: bytes = field(repr=False)


Event = Reply | Garbage

# ---- decoder ---------------------------------------------------------------------------

# A reply is short; anything longer without its closing 'x' is noise.
MAX_REPLY_BYTES = 64
_REPLY = re.compile(rb"([a-z]) ([0-9A-Fa-f]{2,3}) (OK|NG)((?:[0-9A-Fa-f]{2})*)x\Z")


class Decoder:
    """Bytes from displays in, :class:`Reply` events out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        self._buf += data
        while True:
            end = self._buf.find(REPLY_END)
            if end < 0:
                if len(self._buf) > MAX_REPLY_BYTES:
                    events.append(Garbage("no reply end", bytes(self._buf)))
                    self._buf.clear()
                break
            candidate = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            match = _REPLY.search(candidate)
            if match is None:
                stripped = candidate.strip(b" \r\n\0")
                if stripped:
                    events.append(Garbage("not a reply", candidate))
                continue
            before = candidate[: match.start()].strip(b" \r\n\0")
            if before:
                events.append(Garbage("bytes before a reply", before))
            letter, set_id, verdict, payload = match.groups()
            values = tuple(int(payload[i : i + 2], 16) for i in range(0, len(payload), 2))
            events.append(Reply(letter.decode(), int(set_id, 16), verdict == b"OK", values))
        return events


# ---- encoders -------------------------------------------------------------------------------


def _check_int(value: object, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParams(f"{name} must be an integer", name)
    if not low <= value <= high:
        raise InvalidParams(f"{name} {value} out of range {low}..{high}", name)
    return value


def encode(cmd: Cmd, set_id: int, data: int | Sequence[int]) -> bytes:
    """One request; ``data`` of :data:`READ` asks for the current value."""
    sid = _check_int(set_id, 0, MAX_SET_ID, "set_id")
    values = [data] if isinstance(data, int) else list(data)
    if not values:
        raise InvalidParams("no data", "data")
    for v in values:
        if v != READ:
            _check_int(v, cmd.low, cmd.high, "data")
        elif not isinstance(v, int) or isinstance(v, bool):
            raise InvalidParams("data must be an integer", "data")
    text = f"{cmd.code} {sid:02x} " + " ".join(f"{v:02x}" for v in values)
    return text.encode("ascii") + TERMINATOR


def encode_read(cmd: Cmd, set_id: int) -> bytes:
    return encode(cmd, set_id, READ)


def encode_power(set_id: int, on: bool) -> bytes:
    if not isinstance(on, bool):
        raise InvalidParams("on must be true or false", "on")
    return encode(Cmd.POWER, set_id, 0x01 if on else 0x00)


def encode_input(set_id: int, source: Input | int) -> bytes:
    try:
        src = Input(source)
    except ValueError:
        raise InvalidParams(f"unknown input {source!r}", "source") from None
    return encode(Cmd.INPUT, set_id, int(src))


def encode_volume(set_id: int, volume: int) -> bytes:
    return encode(Cmd.VOLUME, set_id, _check_int(volume, 0, 100, "volume"))


def encode_volume_mute(set_id: int, muted: bool) -> bytes:
    if not isinstance(muted, bool):
        raise InvalidParams("muted must be true or false", "muted")
    return encode(Cmd.VOLUME_MUTE, set_id, VOLUME_MUTE_ON if muted else VOLUME_MUTE_OFF)


def encode_screen_mute(set_id: int, muted: bool) -> bytes:
    if not isinstance(muted, bool):
        raise InvalidParams("muted must be true or false", "muted")
    return encode(Cmd.SCREEN_MUTE, set_id, SCREEN_MUTE_ON if muted else SCREEN_MUTE_OFF)


def tile_code(columns: int, rows: int) -> int:
    return (columns << 4) | rows


def decode_tile(code: int) -> tuple[int, int] | None:
    """``(columns, rows)``, or None when tiling is off (1x1 and the 0 codes)."""
    columns, rows = code >> 4, code & 0x0F
    if columns <= 1 and rows <= 1:
        return None
    return columns, rows


def encode_tile_mode(set_id: int, columns: int, rows: int) -> bytes:
    c = _check_int(columns, 1, TILE_MAX, "columns")
    r = _check_int(rows, 1, TILE_MAX, "rows")
    return encode(Cmd.TILE_MODE, set_id, tile_code(c, r))


def encode_tile_id(set_id: int, tile_id: int) -> bytes:
    return encode(Cmd.TILE_ID, set_id, _check_int(tile_id, 1, 225, "tile_id"))
