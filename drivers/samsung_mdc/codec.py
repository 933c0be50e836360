"""Samsung MDC (Multiple Display Control), sans-I/O.

Written from Samsung's "Multiple Display Control Protocol" document (v13.x) and the RS-232C
/ MDC chapters of its signage manuals. Every message is a binary frame::

    0xAA  cmd  id  len  data[len]  checksum

where ``checksum`` is the low 8 bits of the sum of every byte after ``0xAA``. A display
answers with ``cmd = 0xFF``: ``'A'`` (ack), the command it answers and its values, or
``'N'`` (nak), the command and one error byte. ``id`` 0xFE addresses every display on a
daisy chain, which then must not answer (they would talk over each other). On TCP (port
1515) the same frames travel unchanged; displays in the "secured protocol" mode first
send ``MDCSTART<<TLS>>`` and expect TLS and a PIN instead.

:class:`Decoder` turns bytes from displays into events; ``encode_*`` builds requests after
checking each value against what the protocol allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from drivers.errors import InvalidParams

PORT = 1515
BAUD = 9600

# ---- grammar tables (shared with the simulator) ------------------------------------

HEADER = 0xAA
REPLY = 0xFF
ACK = 0x41  # 'A'
NAK = 0x4E  # 'N'
BROADCAST_ID = 0xFE
MAX_ID = 0xFE
TLS_BANNER = b"MDCSTART<<TLS>>"


class Command(IntEnum):
    STATUS = 0x00
    SERIAL_NUMBER = 0x0B
    SOFTWARE_VERSION = 0x0E
    POWER = 0x11
    VOLUME = 0x12
    MUTE = 0x13
    INPUT_SOURCE = 0x14
    VIDEO_WALL_MODE = 0x5C
    VIDEO_WALL_ON = 0x84
    VIDEO_WALL_USER = 0x89
    MODEL_NAME = 0x8A


class Power(IntEnum):
    OFF = 0x00
    ON = 0x01
    REBOOT = 0x02


class Mute(IntEnum):
    OFF = 0x00
    ON = 0x01
    UNAVAILABLE = 0xFF  # models without audio


class InputSource(IntEnum):
    S_VIDEO = 0x04
    COMPONENT = 0x08
    AV = 0x0C
    AV2 = 0x0D
    SCART1 = 0x0E
    PC = 0x14
    DVI = 0x18
    BNC = 0x1E
    DVI_VIDEO = 0x1F
    MAGIC_INFO = 0x20
    HDMI1 = 0x21
    HDMI1_PC = 0x22
    HDMI2 = 0x23
    HDMI2_PC = 0x24
    DISPLAY_PORT_1 = 0x25
    DISPLAY_PORT_2 = 0x26
    DISPLAY_PORT_3 = 0x27
    HDMI3 = 0x31
    HDMI3_PC = 0x32
    HDMI4 = 0x33
    HDMI4_PC = 0x34
    TV_DTV = 0x40
    PLUG_IN_MODE = 0x50
    HD_BASE_T = 0x55
    MEDIA_MAGIC_INFO_S = 0x60
    URL_LAUNCHER = 0x63
    WEB_BROWSER = 0x65


# The document marks these "get only": a display reports them (a PC signal on an HDMI
# port) but refuses them as a target.
GET_ONLY_SOURCES = frozenset(
    {
        InputSource.DVI_VIDEO,
        InputSource.HDMI1_PC,
        InputSource.HDMI2_PC,
        InputSource.HDMI3_PC,
        InputSource.HDMI4_PC,
    }
)


class VideoWallMode(IntEnum):
    NATURAL = 0x00
    FULL = 0x01


# STATUS (0x00) answers power, volume, mute, input, aspect and two legacy timer bytes.
STATUS_FIELDS = ("power", "volume", "mute", "input_source", "aspect", "n_time_nf", "f_time_nf")
VOLUME_MAX = 100
WALL_MAX = 15  # Wall_Div packs each dimension in a nibble

# ---- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    display_id: int
    command: int
    data: bytes


@dataclass(frozen=True)
class Nak:
    display_id: int
    command: int
    error: int


@dataclass(frozen=True)
class ChecksumError:
    """A frame whose checksum did not add up (the decoder resynchronised after its 0xAA)."""

    frame: bytes = field(repr=False)
    expected: int
    received: int


@dataclass(frozen=True)
class Garbage:
    reason: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class TlsRequired:
    """The display speaks the secured protocol: TLS and a PIN come first."""


Event = Ack | Nak | ChecksumError | Garbage | TlsRequired


# ---- framing --------------------------------------------------------------------------


def checksum(body: bytes) -> int:
    """Low 8 bits of the sum of the bytes after the 0xAA header."""
    return sum(body) & 0xFF


def frame(command: int, display_id: int, data: bytes = b"") -> bytes:
    if not 0 <= command <= 0xFF:
        raise InvalidParams(f"command {command} is not a byte", "command")
    if not 0 <= display_id <= 0xFF:
        raise InvalidParams(f"display id {display_id} is not a byte", "display_id")
    if len(data) > 0xFF:
        raise InvalidParams("more than 255 data bytes", "data")
    body = bytes((command, display_id, len(data))) + data
    return bytes((HEADER,)) + body + bytes((checksum(body),))


class Decoder:
    """Bytes from displays in, events out; resynchronises on the next 0xAA after trouble."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        self._buf += data
        buf = self._buf
        while buf:
            start = buf.find(HEADER)
            if start != 0:
                # The TLS banner is plain ASCII and holds no 0xAA.
                pos = buf.find(TLS_BANNER)
                if pos >= 0 and (start < 0 or pos < start):
                    if pos:
                        events.append(Garbage("bytes before a frame", bytes(buf[:pos])))
                    events.append(TlsRequired())
                    del buf[: pos + len(TLS_BANNER)]
                    continue
                if start < 0:
                    drop = len(buf) - self._banner_prefix_len()
                    if drop:
                        events.append(Garbage("bytes before a frame", bytes(buf[:drop])))
                        del buf[:drop]
                    break
                events.append(Garbage("bytes before a frame", bytes(buf[:start])))
                del buf[:start]
            if len(buf) >= 2 and buf[1] != REPLY:
                # Displays only ever send replies: this 0xAA is noise, and trusting its
                # length byte could swallow the real reply that follows.
                events.append(Garbage("0xAA not followed by a reply", bytes(buf[:2])))
                del buf[:1]
                continue
            if len(buf) < 4:
                break
            length = buf[3]
            total = 4 + length + 1
            if len(buf) < total:
                break
            body = bytes(buf[1 : total - 1])
            received = buf[total - 1]
            expected = checksum(body)
            if received != expected:
                events.append(ChecksumError(bytes(buf[:total]), expected, received))
                # The 0xAA may have been noise inside garbage: try again from the next byte.
                del buf[:1]
                continue
            del buf[:total]
            events.append(self._frame(body))
        return events

    def _banner_prefix_len(self) -> int:
        """Length of a trailing partial TLS banner worth keeping for the next feed."""
        buf = self._buf
        for n in range(min(len(buf), len(TLS_BANNER) - 1), 0, -1):
            if TLS_BANNER.startswith(bytes(buf[-n:])):
                return n
        return 0

    @staticmethod
    def _frame(body: bytes) -> Event:
        display_id, length = body[1], body[2]
        data = body[3:]
        if length < 2 or data[0] not in (ACK, NAK):
            return Garbage("reply without ack/nak", body)
        if data[0] == ACK:
            return Ack(display_id, data[1], bytes(data[2:]))
        if length < 3:
            return Garbage("nak without an error code", body)
        return Nak(display_id, data[1], data[2])


# ---- typed values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    power: int
    volume: int
    mute: int
    input_source: int
    aspect: int


def decode_status(data: bytes) -> Status:
    if len(data) < 5:
        raise ValueError(f"status reply has {len(data)} bytes, expected at least 5")
    return Status(data[0], data[1], data[2], data[3], data[4])


def wall_div(columns: int, rows: int) -> int:
    # The document tabulates Wall_Div codes (0x11 = 1x1 ... 0xFF = 15x15); like the
    # independent python-samsung-mdc, read the low nibble as the horizontal count.
    return (rows << 4) | columns


def decode_wall_div(value: int) -> tuple[int, int]:
    """``(columns, rows)``; ``(0, 0)`` means the display is not part of a wall."""
    return value & 0x0F, value >> 4


# ---- encoders -------------------------------------------------------------------------------


def _check_id(display_id: object) -> int:
    if not isinstance(display_id, int) or isinstance(display_id, bool):
        raise InvalidParams("display id must be an integer", "display_id")
    if not 0 <= display_id <= MAX_ID:
        raise InvalidParams(
            f"display id {display_id} out of range 0..254 (254 = every display)", "display_id"
        )
    return display_id


def _check_int(value: object, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParams(f"{name} must be an integer", name)
    if not low <= value <= high:
        raise InvalidParams(f"{name} {value} out of range {low}..{high}", name)
    return value


def encode_get(command: Command, display_id: int) -> bytes:
    return frame(int(command), _check_id(display_id))


def encode_power(display_id: int, power: Power | bool) -> bytes:
    if isinstance(power, bool):
        value = Power.ON if power else Power.OFF
    else:
        try:
            value = Power(power)
        except ValueError:
            raise InvalidParams(f"power {power!r} is not off, on or reboot", "power") from None
    return frame(Command.POWER, _check_id(display_id), bytes((value,)))


def encode_volume(display_id: int, volume: int) -> bytes:
    v = _check_int(volume, 0, VOLUME_MAX, "volume")
    return frame(Command.VOLUME, _check_id(display_id), bytes((v,)))


def encode_mute(display_id: int, mute: bool) -> bytes:
    if not isinstance(mute, bool):
        raise InvalidParams("mute must be true or false", "mute")
    return frame(Command.MUTE, _check_id(display_id), bytes((Mute.ON if mute else Mute.OFF,)))


def encode_input(display_id: int, source: InputSource | int) -> bytes:
    try:
        src = InputSource(source)
    except ValueError:
        raise InvalidParams(f"unknown input source {source!r}", "source") from None
    if src in GET_ONLY_SOURCES:
        raise InvalidParams(f"{src.name} can be reported but not selected", "source")
    return frame(Command.INPUT_SOURCE, _check_id(display_id), bytes((src,)))


def encode_video_wall_on(display_id: int, on: bool) -> bytes:
    if not isinstance(on, bool):
        raise InvalidParams("on must be true or false", "on")
    return frame(Command.VIDEO_WALL_ON, _check_id(display_id), bytes((int(on),)))


def encode_video_wall_mode(display_id: int, mode: VideoWallMode | int) -> bytes:
    try:
        m = VideoWallMode(mode)
    except ValueError:
        raise InvalidParams(f"video wall mode {mode!r} is not natural or full", "mode") from None
    return frame(Command.VIDEO_WALL_MODE, _check_id(display_id), bytes((m,)))


def encode_video_wall_user(display_id: int, columns: int, rows: int, position: int) -> bytes:
    """Place the display at ``position`` (1-based, row by row) of a ``columns x rows`` wall."""
    c = _check_int(columns, 1, WALL_MAX, "columns")
    r = _check_int(rows, 1, WALL_MAX, "rows")
    p = _check_int(position, 1, c * r, "position")
    return frame(Command.VIDEO_WALL_USER, _check_id(display_id), bytes((wall_div(c, r), p)))
