"""Extron SIS matrix switchers (CrossPoint, DXP, MAV, XTP II) over Telnet or RS-232.

Start-up on every link: on Telnet, wait for the copyright banner and answer the
``Password:`` prompt (a second prompt means the password was refused); set verbose mode 3
so the switcher reports changes made elsewhere and tags its answers; read the size
(``I``) and refuse a configured size the switcher does not have; read every output's
video and audio tie. A ``Qik`` nobody asked for means someone switched on the front
panel: the ties are read again. A banner in mid-session means the switcher restarted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drivers.connection import Connection, Reply
from drivers.contract import DriverSetup, Manifest, Origin, action
from drivers.errors import AuthFailed, BadConfig, DeviceRejected, DeviceTimeout, DriverError
from drivers.extron_sis import codec as sis
from drivers.matrix import MatrixConfig, MatrixDriver, Tie
from drivers.transport import TcpEndpoint
from wallctl.logs import get_logger

log = get_logger("drivers.extron_sis")


class ExtronConfig(MatrixConfig):
    # The Telnet port drops idle links after 5 minutes: poll well before that.
    keepalive_s: float = Field(default=30.0, ge=0, le=3600)
    # 3 = unsolicited change reports and tagged answers (what this driver expects).
    verbose: int = Field(default=3, ge=0, le=3)
    # How long to wait for the Telnet banner before talking anyway.
    banner_timeout_ms: int = Field(default=3000, ge=0, le=30000)


class PresetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: int = Field(ge=1, le=255, description="global preset number")


def _is(*kinds: type) -> Callable[[sis.Event], Reply]:
    def match(event: sis.Event) -> Reply:
        if isinstance(event, kinds) or isinstance(event, sis.Error):
            return Reply.DONE
        return Reply.OTHER

    return match


def _tie_reply(inp: int, out: int | None, level: str) -> Callable[[sis.Event], Reply]:
    """The switcher echoes a tie (``Out03 In01 All``): only that echo answers it, so a
    late reply to an earlier command, or another controller's tie, is never taken for it."""

    def match(event: sis.Event) -> Reply:
        if isinstance(event, sis.Error):
            return Reply.DONE
        if (
            isinstance(event, sis.TieReport)
            and event.output == out
            and event.input == inp
            and event.level == level
        ):
            return Reply.DONE
        return Reply.OTHER

    return match


def _read_reply(out: int, level: str) -> Callable[[sis.Event], Reply]:
    """A tie read is answered by a bare number, or (verbose 2/3) by a tagged ``Out03 In01
    Vid`` for that output and level -- not by another controller's ``All`` tie report."""

    def match(event: sis.Event) -> Reply:
        if isinstance(event, sis.Number | sis.Error):
            return Reply.DONE
        if isinstance(event, sis.TieReport) and event.output == out and event.level == level:
            return Reply.DONE
        return Reply.OTHER

    return match


def _raise_if_error(event: object) -> None:
    if isinstance(event, sis.Error):
        raise DeviceRejected(event.code, event.reason)


class ExtronDriver(MatrixDriver):
    manifest = Manifest(
        vendor="Extron",
        products=("CrossPoint", "DXP HD 4K Plus", "MAV Plus", "XTP II CrossPoint"),
        protocol="extron-sis",
        family="matrix",
        description="Extron SIS matrix switchers over Telnet (TCP 23) or RS-232",
        default_tcp_port=23,
        default_baud=9600,
    )
    config_model = ExtronConfig
    levels = ("video", "audio")

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        assert isinstance(cfg, ExtronConfig)
        self.cfg = cfg
        self.model = ""
        self._rereading: asyncio.Task[None] | None = None
        self.link = Connection[sis.Event](
            self.device_id,
            setup.endpoint,
            sis.ExtronCodec,
            on_event=self._unsolicited,
            on_status=self.set_status,
            on_connect=self._startup,
            keepalive=self._keepalive,
            gap_s=cfg.gap_ms / 1000,
            timeout_s=cfg.timeout_ms / 1000,
            keepalive_s=cfg.keepalive_s,
            silence_s=cfg.silence_s,
            max_queue=cfg.max_queue,
            # Tie reads answer with a bare number that cannot be told from a late answer
            # to an earlier read: after one unanswered command, resynchronise (reconnect
            # and read everything again) rather than risk an answer off by one.
            dead_after=1,
        )
        self.link.backoff.cap = cfg.retry_max_s

    # --- requests ------------------------------------------------------------------------

    async def _ask(self, data: bytes, *kinds: type, early: bool = False) -> sis.Event:
        return await self._ask_match(data, _is(*kinds), early=early)

    async def _ask_match(
        self, data: bytes, match: Callable[[sis.Event], Reply], early: bool = False
    ) -> sis.Event:
        assert self.link is not None
        event: sis.Event = await self.link.request(data, match, early=early)
        _raise_if_error(event)
        return event

    # --- start-up ---------------------------------------------------------------------------

    async def _startup(self) -> None:
        assert self.link is not None
        if isinstance(self.setup.endpoint, TcpEndpoint):
            await self._login()
        try:
            await self._ask(sis.set_verbose(self.cfg.verbose), sis.Verbose, early=True)
        except DeviceRejected:
            log.info("switcher has no verbose modes", device=self.device_id)
        event = await self._ask(sis.info(), sis.Info, early=True)
        assert isinstance(event, sis.Info)
        if event.video_inputs < self.inputs or event.video_outputs < self.outputs:
            raise BadConfig(
                f"configured size {self.inputs}x{self.outputs} but the switcher is "
                f"{event.video_inputs}x{event.video_outputs}"
            )
        self.set_state("device_size", f"{event.video_inputs}x{event.video_outputs}", "connect")
        await self._read_all(early=True, origin="connect")

    async def _login(self) -> None:
        assert self.link is not None

        def banner_or_prompt(event: object) -> Reply:
            if isinstance(event, sis.PasswordPrompt):
                return Reply.DONE
            if isinstance(event, sis.Banner):
                self.model = event.model
                return Reply.MORE
            if isinstance(event, sis.Line) and self.model:
                return Reply.DONE  # the date line closes the banner
            return Reply.OTHER

        first = await self.link.wait_for(banner_or_prompt, self.cfg.banner_timeout_ms / 1000)
        if isinstance(first, sis.Line):
            # The prompt, when there is one, follows the date line at once.
            first = await self.link.wait_for(
                lambda e: Reply.DONE if isinstance(e, sis.PasswordPrompt) else Reply.OTHER, 0.5
            )
        if not isinstance(first, sis.PasswordPrompt):
            return
        secret = self.setup.password
        if not secret:
            raise AuthFailed("the switcher asks for a password and none is configured")
        try:
            data = sis.password(secret)
        except ValueError as e:
            raise AuthFailed(str(e)) from None

        def login(event: object) -> Reply:
            if isinstance(event, sis.LoginOk | sis.PasswordPrompt | sis.Error):
                return Reply.DONE
            return Reply.OTHER

        answer = await self.link.request(data, login, early=True)
        if not isinstance(answer, sis.LoginOk):
            raise AuthFailed("the switcher refused the password")
        self.set_state("login", answer.level, "connect")

    async def _read_all(self, *, early: bool = False, origin: Origin = "poll") -> None:
        for out in range(1, self.outputs + 1):
            for level in self.levels:
                event = await self._ask_match(
                    sis.read_tie(out, level), _read_reply(out, level), early=early
                )
                inp = event.value if isinstance(event, sis.Number) else getattr(event, "input", 0)
                self.record_tie(Tie(inp, out, level), origin)

    async def _keepalive(self) -> None:
        await self._ask(sis.firmware(), sis.Line, sis.Number)

    # --- what the switcher says on its own ----------------------------------------------------

    def _unsolicited(self, event: sis.Event) -> None:
        if isinstance(event, sis.TieReport):
            if event.output is None:
                for out in range(1, self.outputs + 1):
                    self.record_tie(Tie(event.input, out, event.level), "device")
            elif event.output <= self.outputs:
                self.record_tie(Tie(event.input, event.output, event.level), "device")
        elif isinstance(event, sis.QuickAck):
            # A front-panel switch: the message does not say what changed.
            self._schedule_reread()
        elif isinstance(event, sis.Banner):
            assert self.link is not None
            self.link.drop("the switcher restarted")
        elif isinstance(event, sis.Garbage):
            log.warning("noise on the line", device=self.device_id, size=event.size)
        else:
            log.debug("unsolicited", device=self.device_id, event=repr(event)[:120])

    def _schedule_reread(self) -> None:
        if self._rereading is not None and not self._rereading.done():
            return

        async def reread() -> None:
            try:
                await self._read_all(origin="device")
            except DriverError as e:
                log.warning("tie re-read failed", device=self.device_id, error=e.message)

        self._rereading = asyncio.create_task(reread(), name=f"reread:{self.device_id}")

    # --- the matrix family ---------------------------------------------------------------------

    async def _send_ties(self, ties: Sequence[Tie]) -> None:
        if len(ties) == 1:
            t = ties[0]
            await self._ask_match(
                sis.tie(t.input, t.output, t.level), _tie_reply(t.input, t.output, t.level)
            )
        elif (
            len(ties) == self.outputs
            and len({(t.input, t.level) for t in ties}) == 1
            and {t.output for t in ties} == set(range(1, self.outputs + 1))
        ):
            t = ties[0]
            await self._ask_match(sis.tie_all(t.input, t.level), _tie_reply(t.input, None, t.level))
        else:
            await self._ask(
                sis.quick_ties([(t.input, t.output, t.level) for t in ties]), sis.QuickAck
            )
        for t in ties:
            self.record_tie(t, "command")

    async def _read_ties(self) -> None:
        await self._read_all()

    @action("preset", "Recall a global preset (a stored set of ties).", PresetParams)
    async def act_preset(self, p: PresetParams) -> dict[str, Any]:
        await self._ask(sis.recall_preset(p.preset), sis.PresetRecalled)
        try:
            await self._read_all(origin="command")
        except DeviceTimeout:
            pass
        return {"preset": p.preset, "ties": self.ties_table()}
