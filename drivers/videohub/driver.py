"""Blackmagic Videohub driver: routes, labels and locks over TCP 9990.

Numbers in the API are 1-based like the front panel (output 1 is the protocol's 0). A
Videohub switches SDI video (with its embedded audio) as one level and cannot
disconnect an output, so input 0 is refused before anything is sent.

The state comes only from what the server reports -- the prelude on connect and the
blocks it broadcasts after any change -- as the protocol asks ("never rely on the
desired update actually occurring"): a route counts as done when the server's routing
block shows it, not when the ACK arrives. Liveness: ``PING:`` after ``keepalive_s`` idle
(15 s by default) and a new link after ``silence_s`` without a byte (30 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.backoff import Backoff
from drivers.connection import Connection, Reply
from drivers.contract import DriverSetup, Manifest, action
from drivers.errors import BadConfig, DeviceRejected, DeviceTimeout, DriverError, InvalidParams
from drivers.matrix import MatrixConfig, MatrixDriver, Tie, tie_key
from drivers.videohub import codec
from drivers.videohub.codec import (
    Ack,
    Configuration,
    DeviceInfo,
    EndPrelude,
    Event,
    Garbage,
    Labels,
    LockRequest,
    Locks,
    Nak,
    Preamble,
    Routes,
)
from wallctl.logs import get_logger

log = get_logger("drivers.videohub")

_LOCK_NAMES = {
    codec.LockState.OWNED: "owned",
    codec.LockState.LOCKED: "locked",
    codec.LockState.UNLOCKED: "unlocked",
}


class VideohubConfig(MatrixConfig):
    # Blackmagic's own panels and Companion: PING every 15 s, give up after 30 s of silence.
    keepalive_s: float = Field(default=15.0, ge=0, le=3600)
    silence_s: float = Field(default=30.0, ge=0, le=3600)


class LabelParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: Literal["input", "output"] = Field(description="which side's port to rename")
    number: int = Field(ge=1, le=codec.MAX_INDEX, description="port number (1-based)")
    label: str = Field(min_length=1, max_length=512, description="new name")


class LockParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    output: int = Field(ge=1, le=codec.MAX_INDEX, description="output number (1-based)")
    mode: Literal["lock", "unlock", "force_unlock"] = Field(
        description="lock for this controller, release it, or break another's lock"
    )


_LOCK_REQUESTS = {
    "lock": LockRequest.LOCK,
    "unlock": LockRequest.UNLOCK,
    "force_unlock": LockRequest.FORCE_UNLOCK,
}


def _answer(event: Event) -> Reply:
    return Reply.DONE if isinstance(event, Ack | Nak) else Reply.OTHER


class VideohubDriver(MatrixDriver):
    manifest = Manifest(
        vendor="Blackmagic Design",
        products=(
            "Smart Videohub 12G",
            "Videohub 10x10 / 20x20 / 40x40 / 80x80 12G",
            "Universal Videohub",
            "Micro Videohub",
            "Videohub Server",
        ),
        protocol="videohub",
        family="matrix",
        description="Blackmagic Videohub Ethernet Protocol 2.x (routes, labels, locks)",
        default_tcp_port=codec.PORT,
    )
    config_model = VideohubConfig
    levels = ("video",)

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        assert isinstance(cfg, VideohubConfig)
        self.cfg = cfg
        self.device: DeviceInfo | None = None
        self.protocol_version = ""
        self._routes_changed = asyncio.Event()
        self._prelude_seen = False
        # Routes we asked for and have not yet seen confirmed (to tag their origin).
        self._expected: dict[int, int] = {}
        self.garbage = 0
        self.link = Connection(
            setup.device_id,
            setup.endpoint,
            codec.Decoder,
            on_event=self._on_event,
            on_status=self.set_status,
            on_connect=self._on_connect,
            keepalive=self._ping,
            gap_s=cfg.gap_ms / 1000,
            timeout_s=cfg.timeout_ms / 1000,
            keepalive_s=cfg.keepalive_s,
            silence_s=cfg.silence_s,
            max_queue=cfg.max_queue,
            backoff=Backoff(cap=cfg.retry_max_s),
        )

    # --- link ----------------------------------------------------------------------------

    async def _request(self, data: bytes, *, early: bool = False) -> Ack:
        assert self.link is not None
        event = await self.link.request(data, _answer, early=early)
        if isinstance(event, Nak):
            raise DeviceRejected("NAK", "the Videohub did not accept the request")
        assert isinstance(event, Ack)
        return event

    async def _ping(self) -> None:
        await self._request(codec.encode_ping())

    async def _on_connect(self) -> None:
        self.device = None
        self._prelude_seen = False
        self._expected.clear()
        # The server writes its whole prelude on accept, before it reads anything of ours,
        # so the ACK to this PING arrives after the last prelude block (with or without
        # END PRELUDE, which firmware before protocol 2.7 does not send).
        await self._request(codec.encode_ping(), early=True)
        if self.device is None:
            # Not announced: ask (a Videohub Server that was still starting up).
            for header in (
                codec.VIDEOHUB_DEVICE,
                codec.INPUT_LABELS,
                codec.OUTPUT_LABELS,
                codec.VIDEO_OUTPUT_LOCKS,
                codec.VIDEO_OUTPUT_ROUTING,
            ):
                await self._request(codec.encode_request(header), early=True)
            await self._request(codec.encode_ping(), early=True)
        device = self.device
        if device is None:
            raise DriverError("the server sent no VIDEOHUB DEVICE block")
        if device.present != codec.PRESENT_TRUE:
            raise DriverError(f"the Videohub server reports 'Device present: {device.present}'")
        ins, outs = device.video_inputs, device.video_outputs
        if ins is not None and outs is not None and (self.inputs > ins or self.outputs > outs):
            raise BadConfig(
                f"configured size {self.inputs}x{self.outputs} is larger than the device's "
                f"{ins}x{outs} ({device.model or 'Videohub'})"
            )
        self._prelude_seen = True
        log.info(
            "videohub ready",
            device=self.device_id,
            model=device.model or "",
            protocol_version=self.protocol_version,
            size=f"{ins}x{outs}",
        )

    def _on_event(self, event: Event) -> None:
        origin: Literal["connect", "device"] = "device" if self._prelude_seen else "connect"
        if isinstance(event, Routes):
            if event.header == codec.VIDEO_OUTPUT_ROUTING:
                self._on_routes(event.routes, origin)
        elif isinstance(event, Labels):
            if event.header == codec.INPUT_LABELS:
                self._on_labels("input", self.inputs, event.labels, origin)
            elif event.header == codec.OUTPUT_LABELS:
                self._on_labels("output", self.outputs, event.labels, origin)
        elif isinstance(event, Locks):
            if event.header == codec.VIDEO_OUTPUT_LOCKS:
                for out, lock in event.locks.items():
                    if out < self.outputs:
                        self.set_state(f"lock.{out + 1}", _LOCK_NAMES[lock], origin)
        elif isinstance(event, DeviceInfo):
            self.device = event
            self.set_state(
                "device",
                {
                    "present": event.present,
                    "model": event.model,
                    "friendly_name": event.friendly_name,
                    "unique_id": event.unique_id,
                    "inputs": event.video_inputs,
                    "outputs": event.video_outputs,
                },
                origin,
            )
            if self._prelude_seen and event.present != codec.PRESENT_TRUE:
                # The router behind a Videohub Server went away: reconnect and re-read.
                assert self.link is not None
                self.link.drop(f"device present: {event.present}")
        elif isinstance(event, Preamble):
            self.protocol_version = event.version
            self.set_state("protocol_version", event.version, origin)
        elif isinstance(event, Configuration):
            take = event.settings.get("Take Mode")
            if take is not None:
                self.set_state("take_mode", take == "true", origin)
        elif isinstance(event, Garbage):
            self.garbage += 1
            log.warning("videohub sent garbage", device=self.device_id, reason=event.reason)
        elif isinstance(event, EndPrelude | Ack | Nak):
            pass  # an ACK/NAK no request waits for (it timed out): nothing to update

    def _on_routes(self, routes: dict[int, int], origin: Literal["connect", "device"]) -> None:
        for out, inp in routes.items():
            if out >= self.outputs:
                continue  # beyond the configured part of a larger router
            how: Literal["connect", "device", "command"] = origin
            if self._expected.get(out) == inp:
                del self._expected[out]
                how = "command"
            self.set_state(tie_key("video", out + 1), inp + 1, how)
        self._routes_changed.set()

    def _on_labels(
        self,
        kind: str,
        count: int,
        labels: dict[int, str],
        origin: Literal["connect", "device"],
    ) -> None:
        for idx, text in labels.items():
            if idx < count:
                self.set_state(f"label.{kind}.{idx + 1}", text, origin)

    # --- matrix ----------------------------------------------------------------------------

    def check_tie(self, tie: Tie, where: str = "") -> None:
        super().check_tie(tie, where)
        if tie.input == 0:
            raise InvalidParams(
                "a Videohub cannot disconnect an output; route another input to it",
                field=f"{where}.input" if where else "input",
            )

    async def _send_ties(self, ties: Sequence[Tie]) -> None:
        routes: dict[int, int] = {}
        for t in ties:
            if self.state.get(f"lock.{t.output}") == "locked":
                raise DeviceRejected("locked", f"output {t.output} is locked by another controller")
            routes[t.output - 1] = t.input - 1
        data = codec.encode_routes(routes, outputs=self.outputs, inputs=self.inputs)
        self._expected.update(routes)
        try:
            await self._request(data)
            await self._confirm(routes)
        finally:
            for out in routes:
                self._expected.pop(out, None)

    async def _confirm(self, routes: dict[int, int]) -> None:
        """Wait until the server's routing broadcast shows every route of ``routes``."""
        deadline = time.monotonic() + self.cfg.timeout_ms / 1000
        while True:
            missing = [o for o, i in routes.items() if self.tie_of(o + 1) != i + 1]
            if not missing:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(
                    f"{self.device_id}: the Videohub acknowledged but did not report output "
                    f"{missing[0] + 1} routed"
                )
            self._routes_changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._routes_changed.wait()
            except TimeoutError:
                pass

    async def _read_ties(self) -> None:
        await self._request(codec.encode_request(codec.VIDEO_OUTPUT_ROUTING))
        # The dump follows the ACK; the ACK to a PING comes after it.
        await self._request(codec.encode_ping())

    # --- Videohub actions --------------------------------------------------------------------

    @action("label", "Rename an input or output on the Videohub.", LabelParams)
    async def act_label(self, p: LabelParams) -> dict[str, Any]:
        count = self.inputs if p.kind == "input" else self.outputs
        if p.number > count:
            raise InvalidParams(
                f"{p.kind} {p.number} is out of range: this matrix has {p.kind}s 1..{count}",
                field="number",
            )
        header = codec.INPUT_LABELS if p.kind == "input" else codec.OUTPUT_LABELS
        try:
            data = codec.encode_labels({p.number - 1: p.label}, count=count, header=header)
        except InvalidParams as e:
            raise InvalidParams(e.message, field="label") from None
        await self._request(data)
        await self._request(codec.encode_ping())  # the label broadcast comes before its ACK
        return {
            "kind": p.kind,
            "number": p.number,
            "label": self.state.get(f"label.{p.kind}.{p.number}"),
        }

    @action("lock", "Lock an output for this controller, release it, or break a lock.", LockParams)
    async def act_lock(self, p: LockParams) -> dict[str, Any]:
        if p.output > self.outputs:
            raise InvalidParams(
                f"output {p.output} is out of range: this matrix has outputs 1..{self.outputs}",
                field="output",
            )
        data = codec.encode_locks({p.output - 1: _LOCK_REQUESTS[p.mode]}, count=self.outputs)
        await self._request(data)
        await self._request(codec.encode_ping())
        return {"output": p.output, "lock": self.state.get(f"lock.{p.output}")}
