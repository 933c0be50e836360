"""``[terminals]``: WHIP ingest, WHEP viewing and recording of mobile terminals."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, SecretStr, field_validator

from wallctl.terminals.audio_config import TerminalAudioConfig

# Below this the ports are privileged (and well known): never handed to ICE.
MIN_ICE_PORT = 1024


class Section(BaseModel):
    # wallctl.config.Section's settings, not the class: wallctl.config imports this module
    # while it is being defined, so importing it back would break whichever came first.
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceServerConfig(Section):
    # stun:host:port, turn:host:port?transport=udp|tcp, turns:host:port (site's own servers:
    # government networks reach no public STUN server).
    urls: list[str] = Field(min_length=1, max_length=8)
    username: str | None = Field(default=None, max_length=128)
    credential: SecretStr | None = None

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for u in urls:
            if not u.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"{u!r}: an ICE server URL starts with stun:, turn: or turns:")
        return urls


class RecordingsConfig(Section):
    enabled: bool = True
    # Where segments are written; default: <state_dir>/recordings.
    dir: Path | None = None
    # A segment is closed at the first keyframe after this many seconds.
    segment_s: float = Field(default=60.0, ge=2, le=3600)
    # Below this much free space no new segment is started (alarm on the "terminal"
    # events and /healthz); segments already written are never touched.
    min_free_mb: int = Field(default=1024, ge=0, le=10_000_000)
    # Days a segment is kept after it ends; none (the default) keeps recordings forever,
    # as the standards ask for enforcement footage.
    retention_days: float | None = Field(default=None, gt=0, le=36500)


class TerminalsConfig(Section):
    enabled: bool = True
    # The address phones reach this daemon at, for the WHIP URL `wallctl terminals add`
    # prints (e.g. "https://centre.example:8443"); default: the HTTP listener's address.
    public_url: str | None = Field(default=None, max_length=256)
    # No public STUN server by default (closed networks): host candidates only.
    ice_servers: list[IceServerConfig] = Field(default_factory=list, max_length=8)
    # Further addresses to offer as host candidates, each with the port of every gathered
    # one: the address of a 1:1 NAT or a published address the interfaces do not show.
    announced_addresses: list[IPvAnyAddress] = Field(default_factory=list, max_length=8)
    # UDP ports the host candidates are bound in, [first, last] or "first-last" (both
    # included), for a firewall that opens a range; none (the default): any free port.
    # Each session holds one port of it on each local address (wallctl/terminals/ice.py).
    ice_port_range: tuple[int, ...] | None = None
    # A publisher whose video stops for this long is unpublished (ICE consent failure
    # would take ~30 s); its windows show the offline slate.
    inactivity_s: float = Field(default=3.0, ge=0.5, le=60)
    # Bounds: publishers at once, viewers per source.
    max_publishers: int = Field(default=64, ge=1, le=1024)
    max_viewers: int = Field(default=16, ge=1, le=256)
    recordings: RecordingsConfig = Field(default_factory=RecordingsConfig)
    # The centre's loudspeaker for terminals' voices (wallctl/terminals/audio_config.py).
    audio: TerminalAudioConfig = Field(default_factory=TerminalAudioConfig)

    @field_validator("ice_port_range", mode="before")
    @classmethod
    def _ice_port_range_text(cls, value: object) -> object:
        # "40000-40099", as firewall rules write it, is taken too.
        if isinstance(value, str):
            m = re.match(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$", value)
            if m is None:
                raise ValueError(f'{value!r}: give [first, last] or "first-last"')
            return (int(m.group(1)), int(m.group(2)))
        if not isinstance(value, list | tuple):
            raise ValueError("give the first and the last port: [40000, 40099]")
        return value

    @field_validator("ice_port_range")
    @classmethod
    def _ice_port_range(cls, ports: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if ports is None:
            return None
        if len(ports) != 2:
            raise ValueError("give the first and the last port: [40000, 40099]")
        first, last = ports
        for port in ports:
            if not MIN_ICE_PORT <= port <= 65535:
                raise ValueError(
                    f"port {port} is outside {MIN_ICE_PORT}..65535 (ports below "
                    f"{MIN_ICE_PORT} are privileged)"
                )
        if first > last:
            raise ValueError(f"the first port {first} is above the last {last}")
        return ports

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str | None) -> str | None:
        if url is not None and re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", url) is None:
            raise ValueError(f"{url!r}: give the http:// or https:// address phones reach")
        return url
