"""What the driver knows of a Cisco codec, kept current from status pairs.

Fed by either transport (tshell ``*s`` records or WebSocket ``xFeedback/Event`` trees, both
flattened to ``(path, value)`` pairs). Call status words are mapped to the small set the
conference layer understands, shared with the other codec drivers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from drivers.cisco_xapi.tshell import Path, Scalar

# Cisco call status -> the vendor-neutral words of the conference layer.
CALL_STATUS = {
    "Idle": "idle",
    "Dialling": "dialling",
    # A real codec says Connecting while the far end rings.
    "Connecting": "ringing",
    "Ringing": "ringing",
    "Connected": "connected",
    "Disconnecting": "disconnecting",
    "OnHold": "connected",
    "EarlyMedia": "dialling",
    "Preserved": "connected",
    "RemotePreserved": "connected",
}


@dataclass
class Call:
    id: int
    status: str = "dialling"
    # Cisco's own word, kept for the operator (``Connecting``, ``OnHold``).
    device_status: str = ""
    direction: str = ""
    remote_number: str = ""
    display_name: str = ""
    call_rate: int = 0
    protocol: str = ""
    duration: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CALL_FIELDS = {
    "Direction": "direction",
    "RemoteNumber": "remote_number",
    "CallbackNumber": "remote_number",
    "DisplayName": "display_name",
    "Protocol": "protocol",
    "Duration": "duration",
}


class CodecState:
    def __init__(self) -> None:
        self.calls: dict[int, Call] = {}
        self.microphones_muted: bool | None = None
        self.volume: int | None = None
        # "Off", "Sending" (local presentation) or "Receiving".
        self.presentation_mode: str = "Off"
        self.presentation_source: int | None = None
        self.standby: str = ""

    def clear(self) -> None:
        """Forget everything (a new link reads the whole state again)."""
        self.calls.clear()
        self.microphones_muted = None
        self.volume = None
        self.presentation_mode = "Off"
        self.presentation_source = None
        self.standby = ""

    def apply(self, path: Path, value: Scalar) -> str | None:
        """Take one status pair; the name of what changed ("call", "audio", ...) or None."""
        if len(path) < 2 or path[0] != "Status":
            return None
        head = path[1]
        if head == "Call" and len(path) >= 4 and isinstance(path[2], int):
            cid = path[2]
            key = path[3]
            if key == "ghost":
                return "call" if self.calls.pop(cid, None) is not None else None
            call = self.calls.setdefault(cid, Call(cid))
            if key == "Status":
                call.device_status = str(value)
                call.status = CALL_STATUS.get(str(value), str(value).lower())
            elif key in ("TransmitCallRate", "ReceiveCallRate"):
                call.call_rate = int(value) if isinstance(value, int) else call.call_rate
            elif key in _CALL_FIELDS:
                attr = _CALL_FIELDS[key]
                if key == "CallbackNumber" and call.remote_number:
                    return "call"
                current = getattr(call, attr)
                setattr(call, attr, type(current)(value) if isinstance(current, int) else value)
            return "call"
        if path[1:] == ("Audio", "Microphones", "Mute"):
            self.microphones_muted = str(value) == "On"
            return "audio"
        if path[1:] == ("Audio", "Volume"):
            self.volume = int(value) if isinstance(value, int) else self.volume
            return "audio"
        if path[1:] == ("Conference", "Presentation", "Mode"):
            self.presentation_mode = str(value)
            if str(value) == "Off":
                self.presentation_source = None
            return "presentation"
        if path[1:4] == ("Conference", "Presentation", "LocalInstance") and len(path) >= 6:
            if path[-1] == "ghost":
                self.presentation_source = None
            elif path[-1] == "Source" and isinstance(value, int):
                self.presentation_source = value
            return "presentation"
        if path[1:] == ("Standby", "State"):
            self.standby = str(value)
            return "standby"
        return None

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls": [c.to_dict() for c in sorted(self.calls.values(), key=lambda c: c.id)],
            "microphones_muted": self.microphones_muted,
            "volume": self.volume,
            "presentation": {
                "mode": self.presentation_mode,
                "source": self.presentation_source,
            },
        }
