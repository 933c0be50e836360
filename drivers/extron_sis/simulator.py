"""A simulated Extron SIS matrix switcher (DXP HD 4K Plus style), for tests and rehearsals.

Behaves as the programmer's guides describe: Telnet clients get the copyright banner
and date, then ``Password:`` when a password is set (re-prompted when wrong, ``Login
Administrator`` when right); RS-232 gets the banner only at power-up. Verbose mode per
connection (0 on Telnet, 1 on RS-232 by default; ``Esc n CV``); in modes 1 and 3 other
clients hear ``OutNN InNN All`` when a tie is made and ``Qik`` after a front-panel
switch; in modes 2 and 3 tie reads are tagged. Errors: E01 input out of range, E12 output
out of range, E11 no such preset, E10 anything it does not know. Numbers are 2 digits
wide, 3 on switchers with more than 99 ports.

The command scanner here is written for this side of the line; it shares only the
grammar tables (tie characters, tags, error codes) with the driver's codec.
"""

from __future__ import annotations

import re
import time

from drivers.extron_sis.codec import ESC, LEVEL_SYMBOLS, PASSWORD_PROMPT, SYMBOL_TAGS
from drivers.simulator import DeviceSimulator, SimSession

MODEL = "DXP 1616 HD 4K Plus"
FIRMWARE = "1.05"
PART = "60-1494-01"
MAX_COMMAND = 128

_SYMS = re.escape("".join(SYMBOL_TAGS))
_TIE = re.compile(rf"(\d{{1,4}})\*(\d{{1,4}})([{_SYMS}])")
_TIE_ALL = re.compile(rf"(\d{{1,4}})\*([{_SYMS}])")
_READ = re.compile(rf"(\d{{1,4}})([{_SYMS}])")
_PRESET = re.compile(r"(\d{1,4})\.")
_PARTIAL = re.compile(r"\d{1,4}(\*\d{0,4})?")
_VERBOSE = re.compile(rf"{ESC}(\d?)CV", re.IGNORECASE)
_QUICK = re.compile(rf"{ESC}\+Q([^\r\n]*)[\r\n]", re.IGNORECASE)
# Which levels a tie character moves.
_SYMBOL_LEVELS = {"!": ("video", "audio"), "%": ("video",), "&": ("video",), "$": ("audio",)}
assert set(LEVEL_SYMBOLS.values()) <= set(_SYMBOL_LEVELS)


class ExtronSimulator(DeviceSimulator):
    protocol = "extron-sis"

    def __init__(
        self,
        inputs: int = 16,
        outputs: int = 16,
        *,
        password: str | None = None,
        reply_delay_s: float = 0.0,
    ) -> None:
        super().__init__(password=password, reply_delay_s=reply_delay_s)
        self.inputs = inputs
        self.outputs = outputs
        self.width = 3 if max(inputs, outputs) > 99 else 2
        # The Telnet port hangs up after 5 idle minutes (the guides' default).
        self.idle_timeout_s = 300.0
        self.boots = 0
        self.ties: dict[str, dict[int, int]] = {}
        # Global presets 1..4 hold simple patterns; others are empty (E11).
        self.presets: dict[int, dict[int, int]] = {
            k: {o: (o + k - 1) % inputs + 1 for o in range(1, outputs + 1)} for k in range(1, 5)
        }
        self.reset()

    def reset(self) -> None:
        self.ties = {
            "video": {o: min(o, self.inputs) for o in range(1, self.outputs + 1)},
            "audio": {o: min(o, self.inputs) for o in range(1, self.outputs + 1)},
        }
        self.boots += 1

    # --- formatting ------------------------------------------------------------------------

    def n(self, value: int) -> str:
        return f"{value:0{self.width}d}"

    def banner(self) -> bytes:
        date = time.strftime("%a, %d %b %Y %H:%M:%S", time.gmtime())
        head = f"(c) Copyright 2026, Extron Electronics, {MODEL}, V{FIRMWARE}, {PART}"
        return f"{head}\r\n{date}\r\n".encode()

    # --- connection ------------------------------------------------------------------------

    def on_connect(self, session: SimSession) -> None:
        if session.kind == "tcp":
            session.vars["verbose"] = 0
            session.vars["logged_in"] = not self.password
            out = self.banner()
            if self.password:
                out += f"\r\n{PASSWORD_PROMPT}".encode()
            session.send(out, delayed=False)
        else:
            session.vars["verbose"] = 1
            session.vars["logged_in"] = True
            if self.boots > 1:  # power-up after a reboot: the banner goes out on RS-232 too
                session.send(self.banner(), delayed=False)

    def on_data(self, session: SimSession, data: bytes) -> None:
        session.buffer.extend(data)
        while session.buffer:
            if not session.vars.get("logged_in"):
                if not self._password_line(session):
                    return
                continue
            if not self._one_command(session):
                return

    def _password_line(self, session: SimSession) -> bool:
        buf = session.buffer
        ends = [i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0]
        if not ends:
            if len(buf) > MAX_COMMAND:
                buf.clear()
            return False
        end = min(ends)
        given = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 1]
        while bytes(buf[:1]) in (b"\r", b"\n"):
            del buf[:1]
        if given == self.password:
            session.vars["logged_in"] = True
            session.send(b"\r\nLogin Administrator\r\n")
        else:
            session.send(f"\r\n{PASSWORD_PROMPT}".encode())
        return True

    def _reply(self, session: SimSession, text: str) -> None:
        session.send(text.encode() + b"\r\n")

    def _one_command(self, session: SimSession) -> bool:
        """Run the first complete command of the buffer; False when more bytes are needed."""
        buf = session.buffer
        while bytes(buf[:1]) in (b"\r", b"\n", b" "):
            del buf[:1]
        if not buf:
            return False
        text = buf.decode("latin-1")
        if text.startswith(ESC):
            return self._esc_command(session, text)
        for pattern, run in (
            (_TIE, self._tie),
            (_TIE_ALL, self._tie_all),
            (_READ, self._read),
            (_PRESET, self._preset),
        ):
            m = pattern.match(text)
            if m:
                del buf[: m.end()]
                self.commands += 1
                run(session, m)
                return True
        first = text[0]
        if first in "IiQqNn":
            del buf[:1]
            self.commands += 1
            reply = {
                "i": f"V{self.inputs}X{self.outputs} A{self.inputs}X{self.outputs}",
                "q": FIRMWARE,
                "n": PART,
            }[first.lower()]
            self._reply(session, reply)
            return True
        m = _PARTIAL.match(text)
        if m and m.end() == len(text) and len(text) < MAX_COMMAND:
            return False  # a command still arriving
        # Not a command this switcher knows: E10, and skip the offending character.
        del buf[:1]
        self._reply(session, "E10")
        return True

    def _esc_command(self, session: SimSession, text: str) -> bool:
        buf = session.buffer
        if m := _VERBOSE.match(text):
            del buf[: m.end()]
            self.commands += 1
            if m[1]:
                mode = int(m[1])
                if mode > 3:
                    self._reply(session, "E13")
                    return True
                session.vars["verbose"] = mode
            self._reply(session, f"Vrb{session.vars['verbose']}")
            return True
        if m := _QUICK.match(text):
            del buf[: m.end()]
            self.commands += 1
            self._quick(session, m[1])
            return True
        ends = [i for i in (text.find("\r"), text.find("\n")) if i >= 0]
        if ends or len(text) > MAX_COMMAND:
            del buf[: (min(ends) + 1) if ends else len(buf)]
            self._reply(session, "E10")
            return True
        return False

    # --- commands ----------------------------------------------------------------------------

    def _check(self, inp: int, out: int | None) -> str | None:
        if not 0 <= inp <= self.inputs:
            return "E01"
        if out is not None and not 1 <= out <= self.outputs:
            return "E12"
        return None

    def _apply(self, inp: int, out: int, sym: str) -> None:
        for level in _SYMBOL_LEVELS[sym]:
            self.ties[level][out] = inp

    def _tie(self, session: SimSession, m: re.Match[str]) -> None:
        inp, out, sym = int(m[1]), int(m[2]), m[3]
        err = self._check(inp, out)
        if err:
            self._reply(session, err)
            return
        self._apply(inp, out, sym)
        text = f"Out{self.n(out)} In{self.n(inp)} {SYMBOL_TAGS[sym]}"
        self._reply(session, text)
        self._report(text, exclude=session)

    def _tie_all(self, session: SimSession, m: re.Match[str]) -> None:
        inp, sym = int(m[1]), m[2]
        err = self._check(inp, None)
        if err:
            self._reply(session, err)
            return
        for out in range(1, self.outputs + 1):
            self._apply(inp, out, sym)
        text = f"In{self.n(inp)} {SYMBOL_TAGS[sym]}"
        self._reply(session, text)
        self._report(text, exclude=session)

    def _read(self, session: SimSession, m: re.Match[str]) -> None:
        out, sym = int(m[1]), m[2]
        if not 1 <= out <= self.outputs:
            self._reply(session, "E12")
            return
        level = "audio" if sym == "$" else "video"
        inp = self.ties[level][out]
        if session.vars.get("verbose") in (2, 3):
            tag = "Aud" if sym == "$" else "Vid"
            self._reply(session, f"Out{self.n(out)} In{self.n(inp)} {tag}")
        else:
            self._reply(session, self.n(inp))

    def _preset(self, session: SimSession, m: re.Match[str]) -> None:
        preset = int(m[1])
        ties = self.presets.get(preset)
        if ties is None:
            self._reply(session, "E11")
            return
        for out, inp in ties.items():
            self._apply(inp, out, "!")
        self._reply(session, f"Rpr{preset:02d}")
        self._report("Qik", exclude=session)

    def _quick(self, session: SimSession, body: str) -> None:
        ties = []
        pos = 0
        while pos < len(body):
            m = _TIE.match(body, pos)
            if not m:
                self._reply(session, "E10")
                return
            inp, out = int(m[1]), int(m[2])
            err = self._check(inp, out)
            if err:
                self._reply(session, err)
                return
            ties.append((inp, out, m[3]))
            pos = m.end()
        if not ties:
            self._reply(session, "E10")
            return
        for inp, out, sym in ties:
            self._apply(inp, out, sym)
        self._reply(session, "Qik")
        self._report("Qik", exclude=session)

    def _report(self, text: str, exclude: SimSession | None = None) -> None:
        """Unsolicited change report to every other client in verbose mode 1 or 3."""
        for s in list(self.sessions):
            if s is not exclude and s.vars.get("verbose") in (1, 3) and s.vars.get("logged_in"):
                s.send(text.encode() + b"\r\n", delayed=False)

    # --- front panel (tests and rehearsals) --------------------------------------------

    def front_panel_tie(self, inp: int, out: int, sym: str = "!") -> None:
        """An operator pressed buttons on the switcher: tie, then ``Qik`` to listeners."""
        self._apply(inp, out, sym)
        self._report("Qik")
