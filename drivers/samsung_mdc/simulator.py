"""Simulated Samsung signage displays speaking MDC (TCP 1515 or an RS-232 daisy chain).

One simulator holds one display or a daisy chain of several (``ids``) on one line, as
an RS-232 loop-through wall is wired. With ``ids=None`` (``wallctl simulate``, and
``simulate = true`` devices) a display appears for whatever ID is first addressed, so a
rehearsal works whatever ``display_id`` the configuration names.

Each display keeps power, volume, mute, input, aspect and video-wall settings and
answers ``ACK``/``NAK`` frames per the MDC document; frames for ID 0xFE are obeyed by
all and answered by none. It reads frames with its own splitter and builds replies
from the codec's grammar tables, never with the codec's decoder.

Real quirks, each switchable:

- ``warmup_s``: after power-on (or reboot) the display ACKs, then ignores every frame
  for a few seconds while its panel and SoC come up;
- in standby only status and power are served; other commands get a NAK;
- a frame with a bad checksum is ignored (``checksum_errors`` counts them);
- ``corrupt_replies``: the next N replies go out with a wrong checksum (line noise);
- ``secured``: the display speaks the "secured protocol" and opens every TCP connection
  with ``MDCSTART<<TLS>>``, ignoring plain frames.

NAK error codes are not tabulated by the document; this simulator answers 0x01 for a
value out of range or a command not possible in the current state, 0x02 for an unknown
command.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from drivers.samsung_mdc import codec as g
from drivers.simulator import DeviceSimulator, SimSession

ERR_VALUE = 0x01
ERR_UNKNOWN = 0x02
ASPECT_PC_16_9 = 0x10

DEFAULT_INPUTS = frozenset(
    {
        g.InputSource.HDMI1,
        g.InputSource.HDMI2,
        g.InputSource.DISPLAY_PORT_1,
        g.InputSource.DVI,
        g.InputSource.MAGIC_INFO,
        g.InputSource.URL_LAUNCHER,
    }
)


@dataclass
class Display:
    display_id: int
    power: int = g.Power.ON
    volume: int = 10
    mute: int = g.Mute.OFF
    input_source: int = g.InputSource.HDMI1
    aspect: int = ASPECT_PC_16_9
    wall_on: int = 0
    wall_div: int = 0x00
    wall_sno: int = 1
    wall_mode: int = g.VideoWallMode.FULL
    model_name: str = "QM55B"
    serial_number: str = "0AB1H4MT900123"
    inputs: frozenset[int] = field(default=DEFAULT_INPUTS)
    busy_until: float = 0.0


class SamsungMdcSimulator(DeviceSimulator):
    protocol = "samsung-mdc"

    def __init__(
        self,
        *,
        ids: tuple[int, ...] | None = (1,),
        warmup_s: float = 0.0,
        secured: bool = False,
        reply_delay_s: float = 0.0,
    ) -> None:
        super().__init__(reply_delay_s=reply_delay_s)
        self.any_id = ids is None
        self.displays = {i: Display(i) for i in ids or ()}
        self.warmup_s = warmup_s
        self.secured = secured
        self.checksum_errors = 0
        self.corrupt_replies = 0
        self.frames: list[bytes] = []

    # --- the wire --------------------------------------------------------------------------

    def on_connect(self, session: SimSession) -> None:
        if self.secured and session.kind == "tcp":
            session.send(g.TLS_BANNER, delayed=False)

    def on_data(self, session: SimSession, data: bytes) -> None:
        if self.secured and session.kind == "tcp":
            return  # waiting for a TLS ClientHello that a plain client never sends
        buf = session.buffer
        buf += data
        while buf:
            start = buf.find(g.HEADER)
            if start < 0:
                buf.clear()
                return
            del buf[:start]
            if len(buf) < 4:
                return
            total = 4 + buf[3] + 1
            if len(buf) < total:
                return
            body = bytes(buf[1 : total - 1])
            if sum(body) & 0xFF != buf[total - 1]:
                self.checksum_errors += 1
                del buf[:1]
                continue
            del buf[:total]
            self.frames.append(body)
            self.commands += 1
            self._frame(session, body[0], body[1], body[3:])

    def _reply(self, session: SimSession, display_id: int, payload: bytes) -> None:
        body = bytes((g.REPLY, display_id, len(payload))) + payload
        cs = sum(body) & 0xFF
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            cs ^= 0xFF
        session.send(bytes((g.HEADER,)) + body + bytes((cs,)))

    def _ack(self, session: SimSession, d: Display, command: int, values: bytes) -> None:
        self._reply(session, d.display_id, bytes((g.ACK, command)) + values)

    def _nak(self, session: SimSession, d: Display, command: int, error: int) -> None:
        self._reply(session, d.display_id, bytes((g.NAK, command, error)))

    # --- commands ----------------------------------------------------------------------------

    def _frame(self, session: SimSession, command: int, display_id: int, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        if display_id == g.BROADCAST_ID:
            for each in self.displays.values():
                if each.busy_until <= now:
                    self._execute(None, each, command, data, now)
            return
        target = self.displays.get(display_id)
        if target is None and self.any_id:
            target = self.displays[display_id] = Display(display_id)
        if target is None or target.busy_until > now:
            return  # not on this line, or still starting up: silence
        self._execute(session, target, command, data, now)

    def _execute(
        self, session: SimSession | None, d: Display, command: int, data: bytes, now: float
    ) -> None:
        def ack(values: bytes) -> None:
            if session is not None:
                self._ack(session, d, command, values)

        def nak(error: int) -> None:
            if session is not None:
                self._nak(session, d, command, error)

        get = not data
        if command == g.Command.STATUS and get:
            ack(bytes((d.power, d.volume, d.mute, d.input_source, d.aspect, 0, 0)))
        elif command == g.Command.POWER:
            if get:
                ack(bytes((d.power,)))
            elif len(data) != 1 or data[0] not in (0, 1, 2):
                nak(ERR_VALUE)
            else:
                was_on = d.power == g.Power.ON
                if data[0] == g.Power.REBOOT:
                    if not was_on:
                        nak(ERR_VALUE)
                        return
                    d.busy_until = now + self.warmup_s
                elif data[0] == g.Power.ON and not was_on:
                    d.busy_until = now + self.warmup_s
                d.power = g.Power.OFF if data[0] == g.Power.OFF else g.Power.ON
                ack(bytes((data[0],)))
        elif d.power != g.Power.ON:
            nak(ERR_VALUE)  # standby: only status and power are served
        elif command == g.Command.VOLUME:
            if get:
                ack(bytes((d.volume,)))
            elif len(data) != 1 or data[0] > g.VOLUME_MAX:
                nak(ERR_VALUE)
            else:
                d.volume = data[0]
                ack(data)
        elif command == g.Command.MUTE:
            if get:
                ack(bytes((d.mute,)))
            elif len(data) != 1 or data[0] not in (0, 1):
                nak(ERR_VALUE)
            else:
                d.mute = data[0]
                ack(data)
        elif command == g.Command.INPUT_SOURCE:
            if get:
                ack(bytes((d.input_source,)))
            elif len(data) != 1 or data[0] not in d.inputs:
                nak(ERR_VALUE)
            else:
                d.input_source = data[0]
                ack(data)
        elif command == g.Command.VIDEO_WALL_ON:
            if get:
                ack(bytes((d.wall_on,)))
            elif len(data) != 1 or data[0] not in (0, 1):
                nak(ERR_VALUE)
            else:
                d.wall_on = data[0]
                ack(data)
        elif command == g.Command.VIDEO_WALL_USER:
            if get:
                ack(bytes((d.wall_div, d.wall_sno)))
            elif not d.wall_on or len(data) != 2:
                nak(ERR_VALUE)  # only on a display whose video wall is enabled
            else:
                cols, rows = data[0] & 0x0F, data[0] >> 4
                if not (1 <= cols and 1 <= rows and 1 <= data[1] <= cols * rows):
                    nak(ERR_VALUE)
                    return
                d.wall_div, d.wall_sno = data[0], data[1]
                ack(data)
        elif command == g.Command.VIDEO_WALL_MODE:
            if get:
                ack(bytes((d.wall_mode,)))
            elif not d.wall_on or len(data) != 1 or data[0] not in (0, 1):
                nak(ERR_VALUE)
            else:
                d.wall_mode = data[0]
                ack(data)
        elif command == g.Command.MODEL_NAME and get:
            ack(d.model_name.encode("ascii"))
        elif command == g.Command.SERIAL_NUMBER and get:
            ack(d.serial_number.encode("ascii"))
        else:
            nak(ERR_UNKNOWN)

    # --- faults and front panel ----------------------------------------------------------

    def remote_control(self, display_id: int, **changes: int) -> None:
        """Change a display as its IR remote would (the driver learns it by polling)."""
        d = self.displays[display_id]
        for key, value in changes.items():
            setattr(d, key, value)

    def reset(self) -> None:
        now = asyncio.get_running_loop().time()
        for d in self.displays.values():
            d.busy_until = now + self.warmup_s
