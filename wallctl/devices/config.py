"""The ``[[devices]]`` section: controllable devices and how to reach them.

```toml
[[devices]]
id = "matrix"                 # used in the API, the CLI and events
name = "主矩阵"
protocol = "extron-sis"       # extron-sis, kramer-p3000, videohub, samsung-mdc, lg
host = "192.168.10.20"        # TCP; port defaults to the protocol's (23, 5000, 9990, ...)
# serial = "/dev/ttyUSB0"     # or RS-232: path, baud (default: the protocol's), parity...
password_file = "/etc/wallctl/matrix.pw"   # or password_env / password_credential
size = "16x16"                # driver options, checked by the driver's own model
timeout_ms = 2000
[devices.inputs]              # names people use (matrix inputs / outputs)
3 = "区级会议终端"
[devices.outputs]
5 = "大屏输入5"
```

``simulate = true`` (instead of host/serial) starts the protocol's simulator inside the
daemon on a free loopback port and connects to it: the demo and rehearsals use it.

Every key that is not one of the fields below is a driver option, validated by that
protocol's config model, so ``wallctl check`` says ``devices[2].size: ...``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, SecretStr, ValidationError

# Only names defined above the point where wallctl.config imports this module.
from wallctl.config import Ident, Section

if TYPE_CHECKING:
    from wallctl.config import Problem

NAME_MAX = 64


class SalvoTieConfig(Section):
    # A port number or its configured name.
    input: int | str
    output: int | str
    level: Literal["av", "video", "audio"] = "av"


class SalvoConfig(Section):
    """A named set of ties switched as one command (e.g. "会商模式")."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    ties: list[SalvoTieConfig] = Field(min_length=1, max_length=1024)


class DeviceConfig(Section):
    # Unknown keys are the driver's options (validated in `device_problems`).
    model_config = ConfigDict(extra="allow", frozen=True)

    id: Ident
    name: str = Field(min_length=1, max_length=64)
    protocol: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9\-]*$")
    # TCP
    host: str | None = Field(default=None, min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    # RS-232
    serial: str | None = Field(default=None, min_length=1, max_length=256)
    baud: int | None = Field(default=None, ge=300, le=921600)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    password: SecretStr | None = None
    # Start the protocol's simulator in the daemon and talk to it (demo, rehearsal).
    simulate: bool = False
    # The simulator's reply delay.
    simulate_delay_ms: int = Field(default=0, ge=0, le=10000)
    # Names of matrix inputs and outputs, by number (1-based).
    inputs: dict[int, str] = Field(default_factory=dict, max_length=1024)
    outputs: dict[int, str] = Field(default_factory=dict, max_length=1024)
    # Named salvos of a matrix, run by name with matrix.salvo.
    salvos: list[SalvoConfig] = Field(default_factory=list, max_length=256)
    enabled: bool = True

    def salvo(self, name: str) -> SalvoConfig | None:
        return next((s for s in self.salvos if s.name == name), None)

    def options(self) -> dict[str, Any]:
        """The driver's own options (every key not declared above)."""
        return dict(self.model_extra or {})


def _clean(value: str) -> bool:
    return not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value)


def device_problems(devices: list[DeviceConfig]) -> list[Problem]:
    """Rules pydantic cannot apply alone: protocol known, driver options valid, one way
    to reach each device, names clean and inside the device's size."""
    from drivers import registry
    from wallctl.config import Problem, _pydantic_problems

    problems: list[Problem] = []
    seen: dict[str, int] = {}
    protocols = registry.load_all()
    for i, dev in enumerate(devices):
        path = f"devices[{i}]"
        if dev.id in seen:
            problems.append(
                Problem(f"{path}.id", f"{dev.id!r} is already used by devices[{seen[dev.id]}]")
            )
        seen.setdefault(dev.id, i)
        proto = protocols.get(dev.protocol)
        if proto is None:
            known = ", ".join(sorted(protocols)) or "none"
            problems.append(
                Problem(f"{path}.protocol", f"unknown protocol {dev.protocol!r} (known: {known})")
            )
            continue
        ways = [k for k in ("host", "serial") if getattr(dev, k) is not None]
        if dev.simulate and ways:
            problems.append(Problem(f"{path}.simulate", f"give simulate or {ways[0]}, not both"))
        elif not dev.simulate and len(ways) != 1:
            problems.append(
                Problem(path, "give host (TCP) or serial (RS-232), or simulate = true")
                if not ways
                else Problem(f"{path}.serial", "give host or serial, not both")
            )
        if dev.port is not None and dev.host is None:
            problems.append(Problem(f"{path}.port", "port goes with host"))
        if dev.baud is not None and dev.serial is None:
            problems.append(Problem(f"{path}.baud", "baud goes with serial"))
        if dev.host is not None and not _clean(dev.host):
            problems.append(Problem(f"{path}.host", "must not contain control characters"))
        if dev.password is not None and (
            not _clean(dev.password.get_secret_value()) or not dev.password.get_secret_value()
        ):
            problems.append(Problem(f"{path}.password", "must be non-empty printable text"))
        try:
            cfg = proto.config_model.model_validate(dev.options())
        except ValidationError as e:
            for p in _pydantic_problems(e):
                msg = p.message.removeprefix("Value error, ")
                problems.append(Problem(f"{path}.{p.path}" if p.path else path, msg))
            continue
        # A driver may refuse one way of reaching it (cisco-xapi: SSH needs a host).
        endpoint_problem = getattr(cfg, "endpoint_problem", None)
        why_not = endpoint_problem(ways[0]) if callable(endpoint_problem) and ways else None
        if why_not:
            problems.append(Problem(f"{path}.{ways[0]}", why_not))
        dims = getattr(cfg, "dims", None)
        size = dims() if callable(dims) else None
        if dev.simulate:
            from drivers.registry import SimOptions

            ins, outs = size or (16, 16)
            sim = SimOptions(ins, outs, options=cfg.model_dump(exclude_unset=True))
            why = proto.simulation_problem(sim)
            if why is not None:
                problems.append(Problem(f"{path}.simulate", why))
        for kind, names in (("inputs", dev.inputs), ("outputs", dev.outputs)):
            for num, label in names.items():
                where = f"{path}.{kind}.{num}"
                if num < 1 or (size is not None and num > size[0 if kind == "inputs" else 1]):
                    limit = f"1..{size[0 if kind == 'inputs' else 1]}" if size else "1 or more"
                    problems.append(Problem(where, f"must be a number in {limit}"))
                if not label.strip() or len(label) > NAME_MAX or not _clean(label):
                    problems.append(Problem(where, f"must be 1-{NAME_MAX} printable characters"))
            if names and size is None:
                problems.append(
                    Problem(f"{path}.{kind}", f"a {proto.manifest.family} has no {kind}")
                )
        problems += _salvo_problems(path, dev, size)
    return problems


def _salvo_problems(path: str, dev: DeviceConfig, size: tuple[int, int] | None) -> list[Problem]:
    from wallctl.config import Problem

    if not dev.salvos:
        return []
    if size is None:
        return [Problem(f"{path}.salvos", "only a matrix has salvos")]
    problems: list[Problem] = []
    seen: set[str] = set()
    for j, salvo in enumerate(dev.salvos):
        sp = f"{path}.salvos[{j}]"
        if salvo.name in seen:
            problems.append(Problem(f"{sp}.name", f"{salvo.name!r} is used by another salvo"))
        seen.add(salvo.name)
        if not _clean(salvo.name):
            problems.append(Problem(f"{sp}.name", "must not contain control characters"))
        for k, tie in enumerate(salvo.ties):
            checks: tuple[tuple[str, int | str, dict[int, str], int, int], ...] = (
                ("input", tie.input, dev.inputs, size[0], 0),
                ("output", tie.output, dev.outputs, size[1], 1),
            )
            for kind, value, names, limit, low in checks:
                where = f"{sp}.ties[{k}].{kind}"
                if isinstance(value, int):
                    if not low <= value <= limit:
                        problems.append(Problem(where, f"must be a number in {low}..{limit}"))
                elif value not in names.values():
                    problems.append(
                        Problem(where, f"no {kind} named {value!r} in [devices.{kind}s]")
                    )
    return problems
