"""API methods for devices: list/status/call any declared action, matrix routes and
salvos, display power and input.

Ports may be given by number or by the name configured for them (``"区级会议终端"``).
A daemon without devices answers ``device.list`` with an empty list and any other device
method with ``not_found`` for the device named.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from wallctl.api.methods import ApiContext, NoParams, Params, Result, method
from wallctl.devices.service import DeviceService
from wallctl.errors import InvalidField, NotFound
from wallctl.store import Actor

Ident = Annotated[str, Field(min_length=1, max_length=64)]
# A matrix port: its number, or its configured name.
Port = (
    Annotated[StrictInt, Field(ge=0, le=1024)]
    | Annotated[StrictStr, Field(min_length=1, max_length=64)]
)
Level = Literal["av", "video", "audio"]


class DeviceParams(Params):
    device: Ident


class DeviceCallParams(DeviceParams):
    action: Ident
    # The action's parameters, checked against its declared schema (see device.list).
    args: dict[str, Any] = Field(default_factory=dict, max_length=64)


class RouteParams(DeviceParams):
    input: Port
    outputs: list[Port] = Field(min_length=1, max_length=1024)
    level: Level = "av"


class SalvoTie(Params):
    input: Port
    output: Port
    level: Level = "av"


class SalvoParams(DeviceParams):
    # Give the ties, or the name of a salvo configured for the device.
    ties: list[SalvoTie] | None = Field(default=None, min_length=1, max_length=1024)
    salvo: str | None = Field(default=None, min_length=1, max_length=64)


class MatrixParams(Params):
    # One matrix, or all of them when absent.
    device: Ident | None = None


class PowerParams(DeviceParams):
    on: StrictBool


class InputParams(DeviceParams):
    source: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")


class DeviceList(Result):
    devices: list[dict[str, Any]]


class DeviceAnswer(Result):
    device: str
    result: dict[str, Any]


class TieReport(Result):
    device: str
    # The configured salvo run, when one was named.
    salvo: str | None = None
    # False when any tie failed; each tie says its own outcome (ok, code, message).
    ok: bool
    ties: list[dict[str, Any]]


class MatrixStatus(Result):
    matrices: list[dict[str, Any]]


def _service(ctx: ApiContext) -> DeviceService | None:
    svc = ctx.services.get("devices")
    return svc if isinstance(svc, DeviceService) else None


def _need(ctx: ApiContext, device: str) -> DeviceService:
    svc = _service(ctx)
    if svc is None:
        raise NotFound(f"no device {device[:64]!r}", field="params.device")
    return svc


@method(
    "device.list",
    "Controllable devices: status, declared actions (with params JSON schema), state.",
    "read",
    NoParams,
    DeviceList,
)
async def _device_list(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    svc = _service(ctx)
    return DeviceList(devices=svc.list_devices() if svc else [])


@method(
    "device.status",
    "One device's connection state, cached state and link counters.",
    "read",
    DeviceParams,
    DeviceAnswer,
)
async def _device_status(ctx: ApiContext, actor: Actor, p: DeviceParams, rev: int | None) -> Result:
    return DeviceAnswer(device=p.device, result=_need(ctx, p.device).status(p.device))


@method(
    "device.call",
    "Run one of a device's declared actions (see device.list for names and params).",
    "routes",
    DeviceCallParams,
    DeviceAnswer,
)
async def _device_call(
    ctx: ApiContext, actor: Actor, p: DeviceCallParams, rev: int | None
) -> Result:
    result = await _need(ctx, p.device).call(p.device, p.action, p.args, actor)
    return DeviceAnswer(device=p.device, result=result)


@method(
    "device.reconnect",
    "Drop a device's link and reconnect now (skips the backoff wait).",
    "devices",
    DeviceParams,
    DeviceAnswer,
)
async def _device_reconnect(
    ctx: ApiContext, actor: Actor, p: DeviceParams, rev: int | None
) -> Result:
    _need(ctx, p.device).reconnect(p.device)
    return DeviceAnswer(device=p.device, result={"reconnecting": True})


@method(
    "matrix.route",
    "Tie an input to one or more outputs of a matrix (numbers or configured names; input 0"
    " disconnects); answered tie by tie.",
    "routes",
    RouteParams,
    TieReport,
)
async def _matrix_route(ctx: ApiContext, actor: Actor, p: RouteParams, rev: int | None) -> Result:
    r = await _need(ctx, p.device).route(p.device, p.input, list(p.outputs), p.level, actor)
    return TieReport(**r)


@method(
    "matrix.salvo",
    "Several ties of one matrix (given, or a salvo named in the config) as one command, all"
    " validated before any moves; answered tie by tie.",
    "routes",
    SalvoParams,
    TieReport,
)
async def _matrix_salvo(ctx: ApiContext, actor: Actor, p: SalvoParams, rev: int | None) -> Result:
    if (p.ties is None) == (p.salvo is None):
        raise InvalidField("give either ties or salvo", field="params.ties")
    svc = _need(ctx, p.device)
    if p.salvo is not None:
        return TieReport(**await svc.run_salvo(p.device, p.salvo, actor))
    assert p.ties is not None
    ties = [(t.input, t.output, t.level) for t in p.ties]
    return TieReport(**await svc.salvo(p.device, ties, actor))


@method(
    "matrix.status",
    "Ties of one matrix (or every matrix) with input and output names, from the cache.",
    "read",
    MatrixParams,
    MatrixStatus,
)
async def _matrix_status(ctx: ApiContext, actor: Actor, p: MatrixParams, rev: int | None) -> Result:
    svc = _service(ctx)
    if svc is None:
        if p.device is not None:
            raise NotFound(f"no device {p.device[:64]!r}", field="params.device")
        return MatrixStatus(matrices=[])
    from drivers.matrix import MatrixDriver

    if p.device is not None:
        svc.matrix(p.device)
        ids = [p.device]
    else:
        ids = [d.id for d in svc.devices.values() if isinstance(d.driver, MatrixDriver)]
    out = []
    for did in ids:
        dev, drv = svc.matrix(did)
        out.append({**svc.summary(dev), "ties": drv.ties_table()})
    return MatrixStatus(matrices=out)


@method("display.power", "Switch a display on or to standby.", "routes", PowerParams, DeviceAnswer)
async def _display_power(ctx: ApiContext, actor: Actor, p: PowerParams, rev: int | None) -> Result:
    result = await _need(ctx, p.device).display_power(p.device, p.on, actor)
    return DeviceAnswer(device=p.device, result=result)


@method(
    "display.input",
    "Select a display's input by name (the names are in device.list).",
    "routes",
    InputParams,
    DeviceAnswer,
)
async def _display_input(ctx: ApiContext, actor: Actor, p: InputParams, rev: int | None) -> Result:
    result = await _need(ctx, p.device).display_input(p.device, p.source, actor)
    return DeviceAnswer(device=p.device, result=result)
