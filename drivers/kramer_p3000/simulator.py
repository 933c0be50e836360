"""A simulated Kramer Protocol 3000 matrix switcher, for tests and rehearsals.

As the Protocol 3000 documents describe: a command line starts with ``#`` (optionally
``nn@`` to address a machine; lines for another machine are ignored, as on a shared
RS-485 bus), ends with CR (LF ignored), holds at most 64 characters and may chain
commands with ``|`` (one answer each). Routing ``VID``/``V``, ``AUD``/``A``, ``AV`` with
``in>out`` pairs (0 disconnects, ``*`` every output); queries ``VID? out|*``;
``INFO-IO?``, ``MODEL?``, ``VERSION?``, ``LOGIN``/``LOGOUT``. Errors ERR001 (syntax),
ERR002 (not available), ERR003 (out of range), ERR004 (not logged in). Every route is
reported unprompted to the other clients (``~01@VID 3>2``); a power-up sends the start
message on RS-232.

The scanner here shares only the grammar tables with the driver's codec.
"""

from __future__ import annotations

import re

from drivers.kramer_p3000.codec import COMMAND_LEVELS, ERRORS, MAX_COMMAND, SHORT_FORMS
from drivers.simulator import DeviceSimulator, SimSession

MODEL = "VS-1616DN"
VERSION = "1.12.0034"
_PAIR = re.compile(r"^(\d{1,4})>(\d{1,4}|\*)$")
_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9-]*\??)(?:\s+(.*))?$")
assert {"ERR001", "ERR002", "ERR003", "ERR004"} <= set(ERRORS)


class KramerSimulator(DeviceSimulator):
    protocol = "kramer-p3000"

    def __init__(
        self,
        inputs: int = 16,
        outputs: int = 16,
        *,
        password: str | None = None,
        reply_delay_s: float = 0.0,
        machine: int = 1,
        audio: bool = True,
    ) -> None:
        super().__init__(password=password, reply_delay_s=reply_delay_s)
        self.inputs = inputs
        self.outputs = outputs
        self.machine = machine
        self.audio = audio
        self.boots = 0
        self.routes: dict[str, dict[int, int]] = {}
        self.reset()

    def reset(self) -> None:
        self.routes = {
            "video": {o: min(o, self.inputs) for o in range(1, self.outputs + 1)},
            "audio": {o: min(o, self.inputs) for o in range(1, self.outputs + 1)},
        }
        self.boots += 1

    @property
    def prefix(self) -> str:
        return f"~{self.machine:02d}@"

    def on_connect(self, session: SimSession) -> None:
        session.vars["logged_in"] = not self.password
        if session.kind == "serial" and self.boots > 1:
            session.send(
                f"Kramer Electronics LTD., Device Model {MODEL}, Version {VERSION}\r\n".encode(),
                delayed=False,
            )

    def on_data(self, session: SimSession, data: bytes) -> None:
        session.buffer.extend(data)
        while True:
            end = session.buffer.find(b"\r")
            if end < 0:
                if len(session.buffer) > 4 * MAX_COMMAND:  # noise without an end
                    session.buffer.clear()
                return
            raw = bytes(session.buffer[:end]).replace(b"\n", b"")
            del session.buffer[: end + 1]
            self._line(session, raw)

    def _send(self, session: SimSession, text: str) -> None:
        session.send(f"{self.prefix}{text}\r\n".encode())

    def _line(self, session: SimSession, raw: bytes) -> None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self._send(session, "ERR001")
            return
        start = text.find("#")
        if start < 0:
            if text.strip():
                self._send(session, "ERR001")
            return
        text = text[start:]
        if len(text) + 1 > MAX_COMMAND:
            self._send(session, "ERR001")
            return
        body = text[1:]
        m = re.match(r"^(\d{1,3})@", body)
        if m:
            if int(m[1]) != self.machine:
                return  # another machine's command
            body = body[m.end() :]
        if any(ord(c) < 32 or ord(c) == 127 for c in body):
            self._send(session, "ERR001")
            return
        for command in body.split("|"):
            self.commands += 1
            self._command(session, command.strip())

    def _command(self, session: SimSession, command: str) -> None:
        if command == "":
            self._send(session, " OK")
            return
        m = _NAME.match(command)
        if not m:
            self._send(session, "ERR001")
            return
        name, params = m[1].upper(), (m[2] or "").strip()
        query = name.endswith("?")
        base = SHORT_FORMS.get(name.rstrip("?"), name.rstrip("?"))
        if base == "LOGIN":
            self._login(session, params)
            return
        if base == "LOGOUT":
            session.vars["logged_in"] = not self.password
            self._send(session, "LOGOUT OK")
            return
        if base == "MODEL" and query:
            self._send(session, f"MODEL {MODEL}")
            return
        if base == "VERSION" and query:
            self._send(session, f"VERSION {VERSION}")
            return
        if not session.vars.get("logged_in"):
            self._send(session, f"{base} ERR004")
            return
        if base == "INFO-IO" and query:
            self._send(session, f"INFO-IO IN {self.inputs},OUT {self.outputs}")
            return
        level = COMMAND_LEVELS.get(base)
        if level is None or (level == "audio" and not self.audio):
            self._send(session, f"{base} ERR002")
            return
        if query:
            self._query(session, base, level, params)
        else:
            self._route(session, base, level, params)

    def _login(self, session: SimSession, params: str) -> None:
        _, _, secret = params.partition(",")
        if self.password is None or secret == self.password:
            session.vars["logged_in"] = True
            self._send(session, f"LOGIN {params} OK")
        else:
            self._send(session, "LOGIN ERR004")

    def _levels(self, level: str) -> list[str]:
        if level == "av":
            return ["video", "audio"] if self.audio else ["video"]
        return [level]

    def _query(self, session: SimSession, base: str, level: str, params: str) -> None:
        lvl = "video" if level == "av" else level
        if params == "*":
            body = ",".join(f"{self.routes[lvl][o]}>{o}" for o in range(1, self.outputs + 1))
            self._send(session, f"{base} {body}")
            return
        if not params.isdigit():
            self._send(session, f"{base} ERR001")
            return
        out = int(params)
        if not 1 <= out <= self.outputs:
            self._send(session, f"{base} ERR003")
            return
        self._send(session, f"{base} {self.routes[lvl][out]}>{out}")

    def _route(self, session: SimSession, base: str, level: str, params: str) -> None:
        pairs = []
        for part in params.split(","):
            m = _PAIR.match(part.strip())
            if not m:
                self._send(session, f"{base} ERR001")
                return
            inp = int(m[1])
            out = None if m[2] == "*" else int(m[2])
            if inp > self.inputs or (out is not None and not 1 <= out <= self.outputs):
                self._send(session, f"{base} {params} ERR003")
                return
            pairs.append((inp, out))
        for inp, out in pairs:
            outs = range(1, self.outputs + 1) if out is None else [out]
            for o in outs:
                for lvl in self._levels(level):
                    self.routes[lvl][o] = inp
        self._send(session, f"{base} {params} OK")
        self._report(f"{base} {params}", exclude=session)

    def _report(self, text: str, exclude: SimSession | None = None) -> None:
        for s in list(self.sessions):
            if s is not exclude and s.vars.get("logged_in"):
                s.send(f"{self.prefix}{text}\r\n".encode(), delayed=False)

    # --- front panel (tests and rehearsals) --------------------------------------------

    def front_panel_route(self, inp: int, out: int, level: str = "video") -> None:
        for lvl in self._levels(level):
            self.routes[lvl][out] = inp
        cmd = {"video": "VID", "audio": "AUD", "av": "AV"}[level]
        self._report(f"{cmd} {inp}>{out}")
