"""Simulated LG signage displays on RS-232C (a daisy chain of set IDs on one line).

With ``ids=None`` (``wallctl simulate``, ``simulate = true`` devices) a display appears
for whatever Set ID is first addressed, so a rehearsal works with any ``set_id``.

Requests ``[c1][c2] [set id] [data]\\r`` are answered ``[c2] [set id] [OK|NG][data]x``
as LG's manuals show: a write echoes the data it set, ``ff`` reads the current value,
set ID ``00`` is obeyed by every display and answered by none. It splits requests at
CR and reads them with its own pattern, using the codec's grammar tables for what the
commands are, never the codec's decoder.

Real quirks, each switchable:

- ``warmup_s``: the acknowledgement to a power-on comes only when the display has
  finished powering on, and anything else sent meanwhile is ignored;
- in standby only ``ka`` is served; every other command is answered ``NG``;
- a request that does not parse (wrong spacing, bad hex) gets no answer at all.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from drivers.lg import codec as g
from drivers.simulator import DeviceSimulator, SimSession

MAX_LINE = 64
_REQUEST = re.compile(r"([a-z])([a-z]) ([0-9A-Fa-f]{2,3}) ([0-9A-Fa-f]{2}(?: [0-9A-Fa-f]{2})*)\Z")
INPUT_CODES = frozenset(int(i) for i in g.Input)


@dataclass
class Display:
    set_id: int
    power: int = 1
    input: int = g.Input.HDMI1
    volume: int = 20
    volume_mute: int = g.VOLUME_MUTE_OFF
    screen_mute: int = g.SCREEN_MUTE_OFF
    tile_mode: int = 0x00
    tile_id: int = 1
    busy_until: float = 0.0
    off_reason: int = g.AbnormalState.NORMAL


class LgSimulator(DeviceSimulator):
    protocol = "lg"

    def __init__(
        self,
        *,
        ids: tuple[int, ...] | None = (1,),
        warmup_s: float = 0.0,
        reply_delay_s: float = 0.0,
    ) -> None:
        super().__init__(reply_delay_s=reply_delay_s)
        self.any_id = ids is None
        self.displays = {i: Display(i) for i in ids or ()}
        self.warmup_s = warmup_s
        self.requests: list[str] = []
        self.ignored = 0

    def on_data(self, session: SimSession, data: bytes) -> None:
        buf = session.buffer
        buf += data
        while True:
            end = buf.find(g.TERMINATOR)
            if end < 0:
                if len(buf) > MAX_LINE:
                    buf.clear()
                return
            raw = bytes(buf[:end])
            del buf[: end + 1]
            line = raw.decode("ascii", errors="replace").strip(" \n\0")
            if line:
                self._request(session, line)

    def _request(self, session: SimSession, line: str) -> None:
        m = _REQUEST.match(line)
        if m is None:
            self.ignored += 1
            return
        self.requests.append(line)
        self.commands += 1
        c1, c2, sid_text, data_text = m.groups()
        set_id = int(sid_text, 16)
        values = [int(v, 16) for v in data_text.split(" ")]
        if set_id != g.ALL_SETS and set_id not in self.displays and self.any_id:
            self.displays[set_id] = Display(set_id)
        targets = list(self.displays.values()) if set_id == g.ALL_SETS else []
        if set_id != g.ALL_SETS and set_id in self.displays:
            targets = [self.displays[set_id]]
        now = asyncio.get_running_loop().time()
        for d in targets:
            reply = set_id != g.ALL_SETS
            if d.busy_until > now:
                continue  # powering on: deaf until done
            self._execute(session if reply else None, d, c1 + c2, values, now)

    def _send(
        self, session: SimSession | None, letter: str, d: Display, ok: bool, data: list[int]
    ) -> None:
        if session is None:
            return
        verdict = g.OK if ok else g.NG
        text = f"{letter} {d.set_id:02x} {verdict}" + "".join(f"{v:02x}" for v in data) + "x"
        session.send(text.encode("ascii"))

    def _execute(
        self, session: SimSession | None, d: Display, code: str, values: list[int], now: float
    ) -> None:
        cmd = g.COMMANDS_BY_CODE.get(code)
        letter = code[1]
        if cmd is None:
            self._send(session, letter, d, False, values)
            return
        read = values == [g.READ]
        if cmd is g.Cmd.POWER:
            if read:
                self._send(session, letter, d, True, [d.power])
            elif len(values) != 1 or values[0] not in (0, 1):
                self._send(session, letter, d, False, values)
            elif values[0] == 1 and not d.power and self.warmup_s > 0:
                d.power = 1
                d.off_reason = g.AbnormalState.NORMAL
                d.busy_until = now + self.warmup_s
                # The acknowledgement waits for the end of the power-on processing.
                loop = asyncio.get_running_loop()
                loop.call_later(self.warmup_s, self._send, session, letter, d, True, [1])
            else:
                d.power = values[0]
                d.off_reason = g.AbnormalState.NORMAL if d.power else g.AbnormalState.OFF_BY_RS232
                self._send(session, letter, d, True, values)
            return
        if cmd is g.Cmd.ABNORMAL_STATE:
            self._send(session, letter, d, True, [d.off_reason if not d.power else 0])
            return
        if not d.power:
            self._send(session, letter, d, False, values)
            return
        attr = {
            g.Cmd.INPUT: "input",
            g.Cmd.VOLUME: "volume",
            g.Cmd.VOLUME_MUTE: "volume_mute",
            g.Cmd.SCREEN_MUTE: "screen_mute",
            g.Cmd.TILE_MODE: "tile_mode",
            g.Cmd.TILE_ID: "tile_id",
        }[cmd]
        if read:
            self._send(session, letter, d, True, [getattr(d, attr)])
            return
        if len(values) != 1 or not self._valid(cmd, d, values[0]):
            self._send(session, letter, d, False, values)
            return
        setattr(d, attr, values[0])
        self._send(session, letter, d, True, values)

    @staticmethod
    def _valid(cmd: g.Cmd, d: Display, value: int) -> bool:
        if cmd is g.Cmd.INPUT:
            return value in INPUT_CODES
        if cmd is g.Cmd.SCREEN_MUTE:
            return value in (g.SCREEN_MUTE_OFF, g.SCREEN_MUTE_ON, 0x10)
        if cmd is g.Cmd.TILE_ID:
            cols, rows = d.tile_mode >> 4, d.tile_mode & 0x0F
            return 1 <= value <= max(1, cols * rows)
        return cmd.low <= value <= cmd.high

    def remote_control(self, set_id: int, **changes: int) -> None:
        """Change a display as its IR remote would (seen by the driver's next poll)."""
        d = self.displays[set_id]
        for key, value in changes.items():
            setattr(d, key, value)
        if changes.get("power") == 0:
            d.off_reason = g.AbnormalState.OFF_BY_REMOTE
