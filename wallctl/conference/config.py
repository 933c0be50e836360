"""The ``[conference]`` section: the codecs this centre calls with and the directory of
centres it calls.

```toml
[[conference.codecs]]
id = "upper"                  # the link's name in the API, the CLI and events
name = "市级会议终端"
device = "codec-a"            # a [[devices]] entry (protocol cisco-xapi or huawei-te)
                              # (cisco-xapi on any transport: ws, tshell, or ssh)
matrix = "matrix"             # the [[devices]] matrix the codec's output goes through
matrix_input = 3              # matrix input carrying the codec's far-end video (or a name)
wall_output = 5               # matrix output feeding the wall's input (or a name)
content_output = 7            # matrix output feeding the codec's content input
content_source = 2            # the codec's own input number that carries content
source = "conf-upper"         # the [[sources]] entry showing that wall input / capture
window = { x = 0.5, y = 0.0, w = 0.5, h = 0.5 }   # where the far end opens (fractions)

[[conference.centres]]
id = "nanxun"
name = "南浔区指挥中心"
level = "district"            # city, district or township
parent = "huzhou"             # the centre one level up (another entry's id)
sip = "sip:nanxun@10.33.1.10"
h323 = "h323:nanxun"          # optional
e164 = "+8657212345678"       # optional
prefer = ["sip", "e164", "h323"]   # the order dial strings are tried in
codec = "lower"               # the preferred link
```

Without ``matrix`` (a software wall) nothing is routed: the window shows ``source``, the
capture of the codec's output.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wallctl.config import Ident, Section

if TYPE_CHECKING:
    from wallctl.config import Config, Problem

DIAL = re.compile(r"^[A-Za-z0-9@.:_+\-*#/=;!~%]{1,128}$")
Port = int | str
DialKind = Literal["sip", "h323", "e164"]
DIAL_ORDER: tuple[DialKind, ...] = ("sip", "h323", "e164")


def _port(value: Port | None) -> Port | None:
    if value is None:
        return None
    if isinstance(value, int):
        if not 1 <= value <= 1024:
            raise ValueError("must be a port number in 1..1024 or a configured name")
        return value
    if not value.strip() or len(value) > 64 or any(ord(c) < 32 for c in value):
        raise ValueError("must be a port number or a name of at most 64 printable characters")
    return value


class Rect(Section):
    """A window's place as fractions of the wall's canvas."""

    x: float = Field(ge=0, lt=1)
    y: float = Field(ge=0, lt=1)
    w: float = Field(gt=0, le=1)
    h: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _inside(self) -> Rect:
        if self.x + self.w > 1 + 1e-9 or self.y + self.h > 1 + 1e-9:
            raise PydanticCustomError("rect", "x + w and y + h must be at most 1 (the canvas)")
        return self


DEFAULT_WINDOWS = (
    Rect(x=0.5, y=0.0, w=0.5, h=0.5),
    Rect(x=0.5, y=0.5, w=0.5, h=0.5),
    Rect(x=0.0, y=0.5, w=0.5, h=0.5),
    Rect(x=0.0, y=0.0, w=0.5, h=0.5),
)


class CodecLinkConfig(Section):
    id: Ident
    name: str = Field(min_length=1, max_length=64)
    # The [[devices]] entry of the codec.
    device: Ident
    matrix: Ident | None = None
    matrix_input: Port | None = None
    wall_output: Port | None = None
    content_output: Port | None = None
    content_source: int = Field(default=2, ge=1, le=8)
    # The [[sources]] entry the far-end window shows.
    source: Ident | None = None
    # The wall the far end opens on (default: the main wall).
    wall: Ident | None = None
    window: Rect | None = None
    call_rate: int | None = Field(default=None, ge=64, le=8192)
    # Answer calls ringing in on this codec at once (and put them on the wall).
    auto_answer: bool = False

    _ports = field_validator("matrix_input", "wall_output", "content_output")(_port)

    @model_validator(mode="after")
    def _routing(self) -> CodecLinkConfig:
        if self.matrix is not None and (self.matrix_input is None or self.wall_output is None):
            raise PydanticCustomError(
                "routing", "a codec behind a matrix needs matrix_input and wall_output"
            )
        if self.matrix is None and (self.matrix_input or self.wall_output or self.content_output):
            raise PydanticCustomError("routing", "matrix_input and the outputs go with matrix")
        return self


class CentreConfig(Section):
    id: Ident
    # As people say it: 南浔区指挥中心.
    name: str = Field(min_length=1, max_length=64)
    level: Literal["city", "district", "township"]
    parent: Ident | None = None
    sip: str | None = Field(default=None, max_length=128)
    h323: str | None = Field(default=None, max_length=128)
    e164: str | None = Field(default=None, max_length=32)
    prefer: list[DialKind] = Field(default_factory=lambda: list(DIAL_ORDER), max_length=3)
    # The preferred link (a conference.codecs id); any free one otherwise.
    codec: Ident | None = None
    call_rate: int | None = Field(default=None, ge=64, le=8192)

    @field_validator("sip", "h323", "e164")
    @classmethod
    def _dial(cls, v: str | None) -> str | None:
        if v is not None and not DIAL.match(v):
            raise PydanticCustomError(
                "dial",
                "may hold only letters, digits and @ . : _ + - * # / = ; ! ~ % "
                "(no spaces, quotes or line breaks)",
            )
        return v

    @field_validator("e164")
    @classmethod
    def _e164(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\+?[0-9]{3,20}", v):
            raise PydanticCustomError("e164", "must be digits, optionally after a +")
        return v

    @model_validator(mode="after")
    def _some_number(self) -> CentreConfig:
        if not (self.sip or self.h323 or self.e164):
            raise PydanticCustomError("dial", "give at least one of sip, h323, e164")
        return self

    def dial_strings(self) -> list[tuple[str, str]]:
        """(kind, dial string) in the preferred order, then the rest."""
        order = [*self.prefer, *(k for k in ("sip", "h323", "e164") if k not in self.prefer)]
        out = []
        for kind in order:
            value = getattr(self, kind)
            if value:
                out.append((kind, value))
        return out


class ConferenceConfig(Section):
    codecs: list[CodecLinkConfig] = Field(default_factory=list, max_length=16)
    centres: list[CentreConfig] = Field(default_factory=list, max_length=1024)
    # A call not connected after this long is hung up and reported as failed.
    connect_timeout_s: float = Field(default=60.0, gt=0, le=600)
    # Shown in the far-end window when a call drops (the window stays as a slate).
    slate_label: str = Field(default="会议中断", min_length=1, max_length=32)
    # Sources that conference.share can send as content: source id -> matrix input.
    share_inputs: dict[str, Port] = Field(default_factory=dict, max_length=256)

    @model_validator(mode="after")
    def _references(self) -> ConferenceConfig:
        # Key paths inside the message: the section's own cross-references.
        problems: list[str] = []
        seen: dict[str, int] = {}
        for i, c in enumerate(self.codecs):
            if c.id in seen:
                problems.append(f"codecs[{i}].id: {c.id!r} is already used by codecs[{seen[c.id]}]")
            seen.setdefault(c.id, i)
        devices: dict[str, int] = {}
        for i, c in enumerate(self.codecs):
            if c.device in devices:
                problems.append(
                    f"codecs[{i}].device: {c.device!r} is already codecs[{devices[c.device]}]"
                )
            devices.setdefault(c.device, i)
        ids: dict[str, int] = {}
        for i, centre in enumerate(self.centres):
            if centre.id in ids:
                problems.append(
                    f"centres[{i}].id: {centre.id!r} is already used by centres[{ids[centre.id]}]"
                )
            ids.setdefault(centre.id, i)
        for i, centre in enumerate(self.centres):
            if centre.parent is not None and centre.parent not in ids:
                problems.append(f"centres[{i}].parent: no centre {centre.parent!r}")
            if centre.parent == centre.id:
                problems.append(f"centres[{i}].parent: a centre is not its own parent")
            if centre.codec is not None and centre.codec not in seen:
                problems.append(f"centres[{i}].codec: no codec link {centre.codec!r}")
        for key, port in self.share_inputs.items():
            try:
                _port(port)
            except ValueError as e:
                problems.append(f"share_inputs.{key}: {e}")
        if problems:
            raise PydanticCustomError("conference", "; ".join(problems))
        return self

    def window_for(self, index: int, link: CodecLinkConfig) -> Rect:
        return link.window or DEFAULT_WINDOWS[index % len(DEFAULT_WINDOWS)]


def conference_problems(config: Config) -> list[Problem]:
    """What ``[conference]`` names elsewhere in the config: codec and matrix devices,
    sources, walls. (Run by the service at start-up; meant for ``wallctl check`` too.)"""
    from drivers import registry
    from wallctl.config import Problem  # defined after this module is imported there

    problems: list[Problem] = []
    conf: ConferenceConfig = config.conference
    devices = {d.id: d for d in config.devices}
    protocols = registry.load_all()
    sources = {s.id for s in config.sources}
    walls = {config.wall.id, *config.walls}
    for i, c in enumerate(conf.codecs):
        where = f"conference.codecs[{i}]"
        dev = devices.get(c.device)
        if dev is None:
            problems.append(Problem(f"{where}.device", f"no device {c.device!r} in [[devices]]"))
        else:
            proto = protocols.get(dev.protocol)
            if proto is not None and proto.manifest.family != "codec":
                problems.append(
                    Problem(f"{where}.device", f"{c.device!r} ({dev.protocol}) is not a codec")
                )
        if c.matrix is not None:
            mdev = devices.get(c.matrix)
            if mdev is None:
                problems.append(
                    Problem(f"{where}.matrix", f"no device {c.matrix!r} in [[devices]]")
                )
            else:
                proto = protocols.get(mdev.protocol)
                if proto is not None and proto.manifest.family != "matrix":
                    problems.append(
                        Problem(
                            f"{where}.matrix", f"{c.matrix!r} ({mdev.protocol}) is not a matrix"
                        )
                    )
        if c.source is not None and c.source not in sources:
            problems.append(Problem(f"{where}.source", f"no source {c.source!r} in [[sources]]"))
        if c.wall is not None and c.wall not in walls:
            problems.append(Problem(f"{where}.wall", f"no wall {c.wall!r}"))
    for key in conf.share_inputs:
        if key not in sources:
            problems.append(Problem(f"conference.share_inputs.{key}", f"no source {key!r}"))
    return problems
