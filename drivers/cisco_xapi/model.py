"""The simulated Cisco endpoint itself: status tree, calls, presets, presentation.

:class:`CiscoModel` is what the simulator's faces (``simulator``: WebSocket JSON-RPC,
tshell on TCP or a pty) share. Calls live through the simulated network
(:class:`~drivers.cisco_xapi.farend.FarEnd`): Dialling, Connecting (the far end rings),
Connected; or Disconnecting with a cause (busy, unreachable, rejected, no answer, far-end
or local hang-up), announced as a ``CallDisconnect`` event before the call's status
disappears (``ghost``), as RoomOS does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.cisco_xapi.farend import CAUSES, FarEnd
from drivers.cisco_xapi.tshell import Literal_, Path, Scalar

PRODUCT = "Cisco Room Kit (simulated)"
SOFTWARE = "ce11.9.1.9 (simulated)"


class CommandFailed(Exception):
    def __init__(self, reason: str, result: str = "Result") -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result


StatusListener = Callable[[list[tuple[Path, Scalar]]], None]
EventListener = Callable[[str, list[tuple[Path, Scalar]]], None]


@dataclass
class _SimCall:
    id: int
    number: str
    direction: str
    rate: int
    protocol: str
    task: asyncio.Task[None] | None = None


@dataclass
class CiscoModel:
    user: str = "admin"
    password: str = ""
    farend: FarEnd = field(default_factory=FarEnd)
    max_calls: int = 2
    presets: tuple[int, ...] = (1, 2, 3, 4, 5)
    presentation_sources: int = 4
    # False: no H.323 registration, so H.323 dials are refused (SIP only).
    h323: bool = True
    # Commands answered so far (tests read it to prove nothing reached the model).
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status: dict[Path, Scalar] = {
            ("Audio", "Volume"): 50,
            ("Audio", "Microphones", "Mute"): Literal_("Off"),
            ("Conference", "Presentation", "Mode"): Literal_("Off"),
            ("Standby", "State"): Literal_("Off"),
            ("SystemUnit", "ProductId"): PRODUCT,
            ("SystemUnit", "Software", "Version"): SOFTWARE,
        }
        self.configuration: dict[Path, Scalar] = {
            ("Conference", "DefaultCall", "Rate"): 6000,
            ("NetworkServices", "Websocket"): Literal_("FollowHTTPService"),
        }
        self._calls: dict[int, _SimCall] = {}
        self._next_call = 1
        self._status_listeners: list[StatusListener] = []
        self._event_listeners: list[EventListener] = []
        self.active_preset: int | None = None

    # --- listeners -----------------------------------------------------------------------

    def on_status(self, listener: StatusListener) -> Callable[[], None]:
        self._status_listeners.append(listener)
        return lambda: self._status_listeners.remove(listener)

    def on_event(self, listener: EventListener) -> Callable[[], None]:
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    def _set(self, changes: list[tuple[Path, Scalar]]) -> None:
        for path, value in changes:
            if path[-1] == "ghost":
                prefix = path[:-1]
                for key in [k for k in self.status if k[: len(prefix)] == prefix]:
                    del self.status[key]
            else:
                self.status[path] = value
        for listener in list(self._status_listeners):
            listener(changes)

    def _event(self, name: str, pairs: list[tuple[Path, Scalar]]) -> None:
        for listener in list(self._event_listeners):
            listener(name, pairs)

    def query(self, prefix: Path) -> list[tuple[Path, Scalar]]:
        return sorted(
            ((k, v) for k, v in self.status.items() if k[: len(prefix)] == prefix),
            key=lambda kv: tuple(str(p).zfill(8) for p in kv[0]),
        )

    # --- calls ---------------------------------------------------------------------------

    @property
    def calls(self) -> dict[int, str]:
        """Call id -> Cisco status word (for tests)."""
        return {cid: str(self.status.get(("Call", cid, "Status"), "")) for cid in self._calls}

    def _call_status(self, call: _SimCall, status: str) -> None:
        self._set([(("Call", call.id, "Status"), Literal_(status))])

    def _new_call(self, number: str, direction: str, rate: int, protocol: str) -> _SimCall:
        if len(self._calls) >= self.max_calls:
            raise CommandFailed("Max active calls reached", "DialResult")
        call = _SimCall(self._next_call, number, direction, rate, protocol)
        self._next_call += 1
        self._calls[call.id] = call
        self._set(
            [
                (
                    ("Call", call.id, "Status"),
                    Literal_("Dialling" if direction == "Outgoing" else "Ringing"),
                ),
                (("Call", call.id, "Direction"), Literal_(direction)),
                (("Call", call.id, "RemoteNumber"), number),
                (("Call", call.id, "CallbackNumber"), f"{protocol.lower()}:{number}"),
                (("Call", call.id, "DisplayName"), number),
                (("Call", call.id, "Protocol"), Literal_(protocol)),
                (("Call", call.id, "TransmitCallRate"), rate),
                (("Call", call.id, "ReceiveCallRate"), rate),
                (("Call", call.id, "Duration"), 0),
            ]
        )
        return call

    def _end_call(self, call: _SimCall, cause: str) -> None:
        if self._calls.pop(call.id, None) is None:
            return
        if call.task is not None and call.task is not asyncio.current_task():
            call.task.cancel()
        _, code, text = CAUSES.get(cause, ("failed", 500, cause))
        cause_type = {
            "local_hangup": "LocalDisconnect",
            "remote_hangup": "RemoteDisconnect",
            "drop": "RemoteDisconnect",
            "busy": "RemoteBusy",
            "unreachable": "Unavailable",
            "reject": "RemoteRejected",
            "no_answer": "RemoteNoAnswer",
        }.get(cause, "NetworkRejected")
        self._call_status(call, "Disconnecting")
        self._event(
            "CallDisconnect",
            [
                (("CallId",), call.id),
                (("CauseType",), Literal_(cause_type)),
                (("CauseCode",), code),
                (("CauseString",), text),
                (("CauseOrigin",), Literal_("SIP")),
                (("RemoteURI",), call.number),
                (("OrigCallDirection",), Literal_(call.direction.lower())),
            ],
        )
        self._set([(("Call", call.id, "ghost"), "True")])
        if not self._calls and self.status.get(("Conference", "Presentation", "Mode")) != "Off":
            self._stop_presentation()

    async def _life(self, call: _SimCall) -> None:
        fe = self.farend
        outcome = fe.outcome(call.number)
        await asyncio.sleep(fe.setup_s)
        if outcome in ("busy", "unreachable", "reject"):
            self._end_call(call, outcome)
            return
        self._call_status(call, "Connecting")
        if outcome == "no_answer":
            await asyncio.sleep(fe.no_answer_s)
            self._end_call(call, "no_answer")
            return
        await asyncio.sleep(fe.ring_s)
        self._call_status(call, "Connected")
        self._event("CallSuccessful", [(("CallId",), call.id), (("RemoteURI",), call.number)])
        if outcome == "drop":
            await asyncio.sleep(fe.drop_after_s)
            self._end_call(call, "drop")

    def dial(self, number: str, rate: int | None, protocol: str | None) -> _SimCall:
        if not number:
            raise CommandFailed("Number must not be empty", "DialResult")
        wants_h323 = protocol == "H323" or number.lower().startswith("h323:")
        if wants_h323 and not self.h323:
            raise CommandFailed("H323 is not enabled on this system", "DialResult")
        call = self._new_call(
            number,
            "Outgoing",
            self.farend.call_rate(rate),
            protocol or ("H323" if number.startswith("h323:") else "Sip"),
        )
        call.task = asyncio.get_running_loop().create_task(self._life(call))
        return call

    def incoming(self, number: str) -> int:
        """The far end calls us (tests and rehearsals): status Ringing until accepted."""
        call = self._new_call(number, "Incoming", self.farend.max_call_rate, "Sip")
        self._event("IncomingCallIndication", [(("CallId",), call.id), (("RemoteURI",), number)])
        return call.id

    def hangup_remote(self, call_id: int | None = None) -> None:
        """The far end hangs up (all calls when ``call_id`` is None)."""
        for call in list(self._calls.values()):
            if call_id is None or call.id == call_id:
                self._end_call(call, "remote_hangup")

    def _find(self, params: dict[str, Any], result: str) -> list[_SimCall]:
        cid = params.get("CallId")
        if cid is None:
            return list(self._calls.values())
        call = self._calls.get(_int(cid, "CallId", result))
        if call is None:
            raise CommandFailed(f"No active call with CallId {cid}", result)
        return [call]

    # --- presentation --------------------------------------------------------------------

    def _stop_presentation(self) -> None:
        self._set(
            [
                (("Conference", "Presentation", "Mode"), Literal_("Off")),
                (("Conference", "Presentation", "LocalInstance", 1, "ghost"), "True"),
            ]
        )

    # --- the command table ---------------------------------------------------------------

    def command(
        self, path: tuple[str, ...], params: dict[str, Any]
    ) -> tuple[str, list[tuple[Path, Scalar]]]:
        """Run an xCommand; (result name, result pairs) or raise CommandFailed."""
        self.commands.append(("/".join(path), dict(params)))
        key = "/".join(p.lower() for p in path)
        name = path[-1] + "Result" if path else "Result"
        if key == "dial":
            number = params.get("Number")
            if not isinstance(number, str):
                raise CommandFailed("Missing or invalid parameter(s): Number", "DialResult")
            rate = params.get("CallRate")
            call = self.dial(
                number,
                _int(rate, "CallRate", "DialResult", 64, 6000) if rate is not None else None,
                str(params["Protocol"]) if "Protocol" in params else None,
            )
            return "DialResult", [(("CallId",), call.id), (("ConferenceId",), call.id)]
        if key == "call/disconnect":
            for call in self._find(params, "CallDisconnectResult"):
                self._end_call(call, "local_hangup")
            return "CallDisconnectResult", []
        if key == "call/accept":
            ringing = [
                c
                for c in self._find(params, "CallAcceptResult")
                if c.direction == "Incoming"
                and self.status.get(("Call", c.id, "Status")) == "Ringing"
            ]
            if not ringing:
                raise CommandFailed("No incoming call to accept", "CallAcceptResult")
            self._call_status(ringing[0], "Connected")
            return "CallAcceptResult", []
        if key == "call/reject":
            ringing = [
                c for c in self._find(params, "CallRejectResult") if c.direction == "Incoming"
            ]
            if not ringing:
                raise CommandFailed("No incoming call to reject", "CallRejectResult")
            self._end_call(ringing[0], "local_hangup")
            return "CallRejectResult", []
        if key == "audio/microphones/mute":
            self._set([(("Audio", "Microphones", "Mute"), Literal_("On"))])
            return "MicrophonesMuteResult", []
        if key == "audio/microphones/unmute":
            self._set([(("Audio", "Microphones", "Mute"), Literal_("Off"))])
            return "MicrophonesUnmuteResult", []
        if key == "audio/volume/set":
            level = _int(params.get("Level"), "Level", "AudioVolumeSetResult", 0, 100)
            self._set([(("Audio", "Volume"), level)])
            return "AudioVolumeSetResult", []
        if key == "presentation/start":
            src = params.get("PresentationSource", params.get("ConnectorId", 2))
            source = _int(
                src, "PresentationSource", "PresentationStartResult", 1, self.presentation_sources
            )
            self._set(
                [
                    (("Conference", "Presentation", "Mode"), Literal_("Sending")),
                    (("Conference", "Presentation", "LocalInstance", 1, "Source"), source),
                    (
                        ("Conference", "Presentation", "LocalInstance", 1, "SendingMode"),
                        Literal_("LocalRemote"),
                    ),
                ]
            )
            return "PresentationStartResult", []
        if key == "presentation/stop":
            self._stop_presentation()
            return "PresentationStopResult", []
        if key == "camera/preset/activate":
            pid = _int(params.get("PresetId"), "PresetId", "CameraPresetActivateResult", 1, 35)
            if pid not in self.presets:
                raise CommandFailed(f"Preset {pid} not found", "CameraPresetActivateResult")
            self.active_preset = pid
            return "CameraPresetActivateResult", []
        if key in ("standby/deactivate", "standby/activate"):
            state = "Off" if key.endswith("deactivate") else "Standby"
            self._set([(("Standby", "State"), Literal_(state))])
            return name, []
        raise CommandFailed("Unknown command", name)


def _int(value: Any, name: str, result: str, lo: int = 0, hi: int = 2**31) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise CommandFailed(f"Invalid value for {name}: {value!r}", result) from None
    if not lo <= number <= hi:
        raise CommandFailed(f"{name} out of range {lo}..{hi}", result)
    return number
