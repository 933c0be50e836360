"""Kramer matrix switchers over Protocol 3000 (TCP 5000 or RS-232).

Start-up on every link: handshake (``#`` -> ``~01@ OK``), ``LOGIN`` when a password is
configured (an ``ERR004`` means it was refused), the size (``INFO-IO?``, checked against
the configured size), then all video and audio routes in one query each (``VID? *``).
Devices without separate audio answer ``AUD?`` with ``ERR002``; the driver then switches
video only. Route reports nobody asked for (front panel, another controller) update the
state as they come; a start message means the device restarted, so the link is redone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import Field

from drivers.connection import Connection, Reply
from drivers.contract import DriverSetup, Manifest, Origin
from drivers.errors import AuthFailed, BadConfig, DeviceRejected
from drivers.kramer_p3000 import codec as p3k
from drivers.matrix import MatrixConfig, MatrixDriver, Tie
from wallctl.logs import get_logger

log = get_logger("drivers.kramer_p3000")


class KramerConfig(MatrixConfig):
    # Machine number for RS-485/RS-232 buses with several devices (None: not addressed).
    machine: int | None = Field(default=None, ge=1, le=99)
    # Login level sent with the password when one is configured.
    login_level: str = Field(default="admin", pattern=r"^[A-Za-z]{1,16}$")


def _reply_to(
    command: str,
    *,
    query: bool = False,
    check: Callable[[str], bool] | None = None,
    machine: int | None = None,
) -> Callable[[p3k.Event], Reply]:
    """A matcher: the reply to ``command`` (a result; or, for a query, the answer).
    ``check`` must also accept the reply's parameters unless it is an error: the device
    echoes routes and the output asked about, so a front-panel report arriving meanwhile
    (same command, no result) is never taken for the answer."""

    def match(event: p3k.Event) -> Reply:
        if not isinstance(event, p3k.Reply):
            return Reply.OTHER
        if machine is not None and event.machine != machine:
            return Reply.OTHER  # another device on the same bus
        if event.command == "" and event.error:  # the whole line was refused
            return Reply.DONE
        if event.command != command:
            return Reply.OTHER
        if event.error:
            return Reply.DONE
        if not query and not event.result:
            return Reply.OTHER
        if check is not None and not check(event.params):
            return Reply.OTHER
        return Reply.DONE

    return match


def _same_routes(sent: list[tuple[int, int | None]]) -> Callable[[str], bool]:
    return lambda params: p3k.parse_routes(params) == sent


def _covers(outputs: int) -> Callable[[str], bool]:
    def check(params: str) -> bool:
        routes = p3k.parse_routes(params)
        return routes is not None and len(routes) >= outputs

    return check


class KramerDriver(MatrixDriver):
    manifest = Manifest(
        vendor="Kramer",
        products=("VS-88UT", "VS-1616DN", "MV-6", "VS-34FD"),
        protocol="kramer-p3000",
        family="matrix",
        description="Kramer matrix switchers over Protocol 3000 (TCP 5000 or RS-232)",
        default_tcp_port=5000,
        default_baud=115200,
    )
    config_model = KramerConfig
    levels: tuple[str, ...] = ("video", "audio")

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        assert isinstance(cfg, KramerConfig)
        self.cfg = cfg
        self.levels = ("video", "audio")
        self.link = Connection[p3k.Event](
            self.device_id,
            setup.endpoint,
            p3k.KramerCodec,
            on_event=self._unsolicited,
            on_status=self.set_status,
            on_connect=self._startup,
            keepalive=self._keepalive,
            gap_s=cfg.gap_ms / 1000,
            timeout_s=cfg.timeout_ms / 1000,
            keepalive_s=cfg.keepalive_s,
            silence_s=cfg.silence_s,
            max_queue=cfg.max_queue,
        )
        self.link.backoff.cap = cfg.retry_max_s

    async def _ask(
        self,
        data: bytes,
        command: str,
        *,
        query: bool = False,
        early: bool = False,
        check: Callable[[str], bool] | None = None,
    ) -> p3k.Reply:
        assert self.link is not None
        match = _reply_to(command, query=query, check=check, machine=self.cfg.machine)
        event = await self.link.request(data, match, early=early)
        assert isinstance(event, p3k.Reply)
        if event.error:
            raise DeviceRejected(event.error, event.reason)
        return event

    # --- start-up ---------------------------------------------------------------------------

    async def _startup(self) -> None:
        m = self.cfg.machine
        await self._ask(p3k.handshake(m), "", early=True)
        if self.setup.password:
            try:
                data = p3k.login(self.cfg.login_level, self.setup.password, m)
            except ValueError as e:
                raise AuthFailed(str(e)) from None
            try:
                await self._ask(data, "LOGIN", early=True)
            except DeviceRejected as e:
                raise AuthFailed(f"the device refused the login ({e.code})") from None
        try:
            io = await self._ask(p3k.info_io(m), "INFO-IO", query=True, early=True)
        except DeviceRejected as e:
            if e.code == "ERR004":
                raise AuthFailed("the device needs a login (ERR004)") from None
            io = None  # older firmware: no INFO-IO
        if io is not None and (size := p3k.parse_io(io.params)) is not None:
            if size[0] < self.inputs or size[1] < self.outputs:
                raise BadConfig(
                    f"configured size {self.inputs}x{self.outputs} but the device is "
                    f"{size[0]}x{size[1]}"
                )
            self.set_state("device_size", f"{size[0]}x{size[1]}", "connect")
        try:
            await self._read_level("audio", early=True, origin="connect")
        except DeviceRejected as e:
            if e.code != "ERR002":
                raise
            self.levels = ("video",)
        await self._read_level("video", early=True, origin="connect")

    async def _read_level(self, level: str, *, early: bool = False, origin: Origin) -> None:
        reply = await self._ask(
            p3k.query_route(level, None, self.cfg.machine),
            p3k.LEVEL_COMMANDS[level],
            query=True,
            early=early,
            check=_covers(self.outputs),
        )
        for inp, out in p3k.parse_routes(reply.params) or []:
            if out is not None and 1 <= out <= self.outputs:
                self.record_tie(Tie(inp, out, level), origin)

    async def _keepalive(self) -> None:
        await self._ask(p3k.handshake(self.cfg.machine), "")

    # --- what the device says on its own ---------------------------------------------------

    def _unsolicited(self, event: p3k.Event) -> None:
        m = self.cfg.machine
        if isinstance(event, p3k.Reply) and m is not None and event.machine != m:
            return  # another device's report on a shared bus
        if isinstance(event, p3k.Reply) and not event.result:
            level = p3k.COMMAND_LEVELS.get(p3k.SHORT_FORMS.get(event.command, event.command))
            routes = p3k.parse_routes(event.params) if level else None
            if level is None or routes is None:
                log.debug("unsolicited", device=self.device_id, command=event.command)
                return
            for inp, out in routes:
                outs = range(1, self.outputs + 1) if out is None else [out]
                for o in outs:
                    if 1 <= o <= self.outputs:
                        self.record_tie(Tie(inp, o, level), "device")
        elif isinstance(event, p3k.StartMessage):
            assert self.link is not None
            self.link.drop("the device restarted")
        elif isinstance(event, p3k.Garbage):
            log.warning("noise on the line", device=self.device_id, size=event.size)

    # --- the matrix family ---------------------------------------------------------------------

    async def _send_ties(self, ties: Sequence[Tie]) -> None:
        by_level: dict[str, list[Tie]] = {}
        for t in ties:
            # A device without separate audio takes AV as VID.
            level = "video" if t.level == "av" and self.levels == ("video",) else t.level
            by_level.setdefault(level, []).append(t)
        for level, group in by_level.items():
            pairs: list[tuple[int, int | None]] = [(t.input, t.output) for t in group]
            if len(group) == self.outputs and len({t.input for t in group}) == 1:
                pairs = [(group[0].input, None)]
            for data, part in p3k.route_chunks(level, pairs, self.cfg.machine):
                await self._ask(data, p3k.LEVEL_COMMANDS[level], check=_same_routes(part))
            for t in group:
                self.record_tie(t, "command")

    async def _read_ties(self) -> None:
        for level in self.levels:
            await self._read_level(level, origin="poll")
