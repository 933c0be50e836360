"""A simulated Blackmagic Videohub server (TCP 9990).

Behaves as the Developer Information describes: the prelude dump on connect (closed by
``END PRELUDE:`` unless simulating firmware older than protocol 2.7), ``ACK``/``NAK``
per client block, the changed items broadcast to every client, ``PING:``, block dumps
on request, and locks as each client sees them (``O`` its own, ``L`` another's, ``U``).
It reads the wire with its own small line splitter and writes with the codec's grammar
tables; it never uses the codec's decoder, so a parser bug cannot hide behind it.

Lock ownership is per connection (a real Videohub keys it on the client's IP address;
on one test host every client has the same address). A departed client's locks are
released at once and the change broadcast (``on_disconnect``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.simulator import DeviceSimulator, SimSession
from drivers.videohub import codec as g

MAX_LINE = 4096
MAX_BLOCK_LINES = 1024
# The state blocks of the prelude after the device block, in the order a Smart Videohub
# 12G sends them (monitoring blocks only on models with monitoring outputs).
STATE_BLOCKS = (
    g.INPUT_LABELS,
    g.OUTPUT_LABELS,
    g.MONITORING_OUTPUT_LABELS,
    g.VIDEO_OUTPUT_LOCKS,
    g.MONITORING_OUTPUT_LOCKS,
    g.VIDEO_OUTPUT_ROUTING,
    g.VIDEO_MONITORING_OUTPUT_ROUTING,
    g.CONFIGURATION,
)


@dataclass
class _Block:
    header: str
    lines: list[str] = field(default_factory=list)


def _text(header: str, lines: list[str]) -> bytes:
    return (header + ":\n" + "".join(f"{line}\n" for line in lines) + "\n").encode("utf-8")


class VideohubSimulator(DeviceSimulator):
    protocol = "videohub"

    def __init__(
        self,
        *,
        inputs: int = 16,
        outputs: int = 16,
        model: str | None = None,
        friendly_name: str = "wallctl simulated Videohub",
        unique_id: str = "7C2E0D0A1B2C",
        version: str = "2.8",
        end_prelude: bool = True,
        device_present: str = g.PRESENT_TRUE,
        monitoring_outputs: int = 0,
        reply_delay_s: float = 0.0,
        password: str | None = None,  # the protocol has none; accepted and ignored
    ) -> None:
        super().__init__(password=None, reply_delay_s=reply_delay_s)
        self.inputs = inputs
        self.outputs = outputs
        self.model = model or f"Blackmagic Smart Videohub 12G {inputs}x{outputs}"
        self.friendly_name = friendly_name
        self.unique_id = unique_id
        self.version = version
        self.end_prelude = end_prelude
        self.device_present = device_present
        self.take_mode = False
        self.input_labels = {i: f"Input {i + 1}" for i in range(inputs)}
        self.output_labels = {o: f"Output {o + 1}" for o in range(outputs)}
        self.routes = {o: o % inputs for o in range(outputs)}
        # Studio/Broadcast Videohubs also have monitoring outputs, in blocks of their own.
        self.monitoring_outputs = monitoring_outputs
        self.monitor_labels = {m: f"Monitor {m + 1}" for m in range(monitoring_outputs)}
        self.monitor_routes = {m: 0 for m in range(monitoring_outputs)}
        self.lock_owner: dict[int, SimSession] = {}
        self.blocks_received = 0
        self.naks = 0

    # --- rendering ----------------------------------------------------------------------

    def _owner(self, out: int) -> SimSession | None:
        owner = self.lock_owner.get(out)
        if owner is not None and (owner.closed or owner not in self.sessions):
            # The client that held the lock has gone: so has its lock.
            del self.lock_owner[out]
            return None
        return owner

    def _lock_char(self, out: int, viewer: SimSession) -> str:
        owner = self._owner(out)
        if owner is None:
            return g.LockState.UNLOCKED.value
        return g.LockState.OWNED.value if owner is viewer else g.LockState.LOCKED.value

    def _dump(self, header: str, viewer: SimSession) -> bytes:
        if header == g.PROTOCOL_PREAMBLE:
            return _text(header, [f"{g.PROTOCOL_VERSION_KEY}: {self.version}"])
        if header == g.VIDEOHUB_DEVICE:
            if self.device_present != g.PRESENT_TRUE:
                return _text(header, [f"{g.DEVICE_PRESENT}: {self.device_present}"])
            return _text(
                header,
                [
                    f"{g.DEVICE_PRESENT}: {g.PRESENT_TRUE}",
                    f"{g.MODEL_NAME}: {self.model}",
                    f"{g.FRIENDLY_NAME}: {self.friendly_name}",
                    f"{g.UNIQUE_ID}: {self.unique_id}",
                    f"{g.VIDEO_INPUTS}: {self.inputs}",
                    f"{g.VIDEO_PROCESSING_UNITS}: 0",
                    f"{g.VIDEO_OUTPUTS}: {self.outputs}",
                    f"{g.VIDEO_MONITORING_OUTPUTS}: {self.monitoring_outputs}",
                    f"{g.SERIAL_PORTS}: 0",
                ],
            )
        if header == g.INPUT_LABELS:
            return _text(header, [f"{i} {t}" for i, t in sorted(self.input_labels.items())])
        if header == g.OUTPUT_LABELS:
            return _text(header, [f"{o} {t}" for o, t in sorted(self.output_labels.items())])
        if header == g.VIDEO_OUTPUT_LOCKS:
            return _text(header, [f"{o} {self._lock_char(o, viewer)}" for o in range(self.outputs)])
        if self.monitoring_outputs and header == g.MONITORING_OUTPUT_LABELS:
            return _text(header, [f"{m} {t}" for m, t in sorted(self.monitor_labels.items())])
        if self.monitoring_outputs and header == g.VIDEO_MONITORING_OUTPUT_ROUTING:
            return _text(header, [f"{m} {i}" for m, i in sorted(self.monitor_routes.items())])
        if self.monitoring_outputs and header == g.MONITORING_OUTPUT_LOCKS:
            return _text(header, [f"{m} U" for m in range(self.monitoring_outputs)])
        if header == g.VIDEO_OUTPUT_ROUTING:
            return _text(header, [f"{o} {i}" for o, i in sorted(self.routes.items())])
        if header == g.CONFIGURATION:
            return _text(header, [f"Take Mode: {'true' if self.take_mode else 'false'}"])
        return b""

    def prelude(self, viewer: SimSession) -> bytes:
        out = self._dump(g.PROTOCOL_PREAMBLE, viewer) + self._dump(g.VIDEOHUB_DEVICE, viewer)
        if self.device_present == g.PRESENT_TRUE:
            for header in STATE_BLOCKS:
                out += self._dump(header, viewer)
        if self.end_prelude:
            out += _text(g.END_PRELUDE, [])
        return out

    # --- the wire ----------------------------------------------------------------------------

    def on_connect(self, session: SimSession) -> None:
        session.send(self.prelude(session), delayed=False)

    def on_data(self, session: SimSession, data: bytes) -> None:
        session.buffer += data
        while True:
            nl = session.buffer.find(b"\n")
            if nl < 0:
                if len(session.buffer) > MAX_LINE:
                    session.buffer.clear()
                    session.vars["skip_line"] = True
                return
            raw = bytes(session.buffer[:nl]).rstrip(b"\r")
            del session.buffer[: nl + 1]
            if session.vars.pop("skip_line", False):
                continue
            self._line(session, raw.decode("utf-8", errors="replace"))

    def _line(self, session: SimSession, line: str) -> None:
        block: _Block | None = session.vars.get("block")
        if block is None:
            if not line:
                return
            if line.endswith(":"):
                session.vars["block"] = _Block(line[:-1])
            else:
                # Not a header: the server cannot make sense of it.
                session.vars["block"] = _Block("")
            return
        if line:
            if len(block.lines) < MAX_BLOCK_LINES:
                block.lines.append(line)
            else:
                block.header = ""  # too long: answered with NAK at its end
            return
        del session.vars["block"]
        self.blocks_received += 1
        self.commands += 1
        self._block(session, block)

    # --- requests -----------------------------------------------------------------------------

    def _ack(self, session: SimSession) -> None:
        session.send(f"{g.ACK}\n\n".encode())

    def _nak(self, session: SimSession) -> None:
        self.naks += 1
        session.send(f"{g.NAK}\n\n".encode())

    def _block(self, session: SimSession, block: _Block) -> None:
        header, lines = block.header, block.lines
        if header == g.PING and not lines:
            self._ack(session)
            return
        if not lines and header in g.REQUESTABLE_BLOCKS:
            dump = self._dump(header, session)
            if not dump:
                self._nak(session)
                return
            self._ack(session)
            session.send(dump)
            return
        if header == g.VIDEO_OUTPUT_ROUTING and self.device_present == g.PRESENT_TRUE:
            self._routing(session, lines)
        elif header == g.VIDEO_MONITORING_OUTPUT_ROUTING and self.monitoring_outputs:
            self._monitor_routing(session, lines)
        elif header in (g.INPUT_LABELS, g.OUTPUT_LABELS) and self.device_present == g.PRESENT_TRUE:
            self._labels(session, header, lines)
        elif header == g.VIDEO_OUTPUT_LOCKS and self.device_present == g.PRESENT_TRUE:
            self._locks(session, lines)
        else:
            self._nak(session)

    @staticmethod
    def _num(text: str, limit: int) -> int | None:
        if not text.isascii() or not text.isdigit() or len(text) > 4:
            return None
        value = int(text)
        return value if value < limit else None

    def _routing(self, session: SimSession, lines: list[str]) -> None:
        changes: dict[int, int] = {}
        for line in lines:
            parts = line.split(" ")
            if len(parts) != 2:
                self._nak(session)
                return
            out, inp = self._num(parts[0], self.outputs), self._num(parts[1], self.inputs)
            if out is None or inp is None:
                self._nak(session)
                return
            owner = self._owner(out)
            if owner is not None and owner is not session:
                # Locked by another client: the whole request is refused.
                self._nak(session)
                return
            changes[out] = inp
        self._ack(session)
        self.apply_routes(changes)

    def _monitor_routing(self, session: SimSession, lines: list[str]) -> None:
        changes: dict[int, int] = {}
        for line in lines:
            parts = line.split(" ")
            mon = self._num(parts[0], self.monitoring_outputs) if len(parts) == 2 else None
            inp = self._num(parts[1], self.inputs) if len(parts) == 2 else None
            if mon is None or inp is None:
                self._nak(session)
                return
            changes[mon] = inp
        self._ack(session)
        self.monitor_routes.update(changes)
        lines_out = [f"{m} {i}" for m, i in changes.items()]
        self.broadcast(_text(g.VIDEO_MONITORING_OUTPUT_ROUTING, lines_out))

    def _labels(self, session: SimSession, header: str, lines: list[str]) -> None:
        table = self.input_labels if header == g.INPUT_LABELS else self.output_labels
        limit = self.inputs if header == g.INPUT_LABELS else self.outputs
        changes: dict[int, str] = {}
        for line in lines:
            num, sep, text = line.partition(" ")
            idx = self._num(num, limit)
            if idx is None or not sep:
                self._nak(session)
                return
            changes[idx] = text
        self._ack(session)
        table.update(changes)
        self.broadcast(_text(header, [f"{i} {t}" for i, t in changes.items()]))

    def _locks(self, session: SimSession, lines: list[str]) -> None:
        changes: dict[int, SimSession | None] = {}
        for line in lines:
            parts = line.split(" ")
            out = self._num(parts[0], self.outputs) if len(parts) == 2 else None
            if out is None or parts[1] not in ("O", "U", "F"):
                self._nak(session)
                return
            owner = self._owner(out)
            if parts[1] == "O":
                if owner is not None and owner is not session:
                    self._nak(session)
                    return
                changes[out] = session
            elif parts[1] == "U":
                if owner is not None and owner is not session:
                    self._nak(session)  # someone else's lock needs F
                    return
                changes[out] = None
            else:
                changes[out] = None
        self._ack(session)
        for out, new_owner in changes.items():
            if new_owner is None:
                self.lock_owner.pop(out, None)
            else:
                self.lock_owner[out] = new_owner
        self._broadcast_locks(list(changes))

    # --- changes from anywhere (clients, front panel, tests) ----------------------------------

    def apply_routes(self, changes: dict[int, int]) -> None:
        """Route and tell every client, as after a front-panel change."""
        self.routes.update(changes)
        self.broadcast(_text(g.VIDEO_OUTPUT_ROUTING, [f"{o} {i}" for o, i in changes.items()]))

    def _broadcast_locks(self, outputs: list[int]) -> None:
        for s in list(self.sessions):
            lines = [f"{o} {self._lock_char(o, s)}" for o in outputs]
            s.send(_text(g.VIDEO_OUTPUT_LOCKS, lines), delayed=False)

    def reset(self) -> None:
        # Routes and labels survive a power cycle on a real Videohub; locks do not.
        self.lock_owner.clear()

    def on_disconnect(self, session: SimSession) -> None:
        # A departed client's locks go with it, and the others hear so at once (rather
        # than on their next dump) so their panels show the outputs free again.
        released = sorted(o for o, owner in self.lock_owner.items() if owner is session)
        for out in released:
            del self.lock_owner[out]
        if released:
            self._broadcast_locks(released)

    def replug(self) -> None:
        """A Videohub Server saw its router change: every block but the preamble again."""
        for s in list(self.sessions):
            out = self._dump(g.VIDEOHUB_DEVICE, s)
            if self.device_present == g.PRESENT_TRUE:
                for header in STATE_BLOCKS:
                    out += self._dump(header, s)
            s.send(out, delayed=False)
