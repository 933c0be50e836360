"""API methods of cameras (PTZ, presets, snapshots) and camera tours.

PTZ calls go through the device service (``DeviceService.call``): the same validation,
error mapping, counting and audit as ``device.call`` on the camera's actions. A camera
without PTZ answers ``device_error`` with "has no PTZ"; a camera not connected answers
``device_not_ready``. Snapshots come back as base64 JPEG in the answer (thumbnails are
small; no second listener or URL to secure).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool

from drivers.errors import DriverError
from wallctl.api.methods import ApiContext, NoParams, Params, Result, method
from wallctl.cameras.service import CameraService
from wallctl.devices.service import driver_error
from wallctl.errors import InvalidField, NotFound
from wallctl.store import Actor

Ident = Annotated[str, Field(min_length=1, max_length=64)]
Unit = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
Token = Annotated[str, Field(min_length=1, max_length=64)]


class CameraParams(Params):
    camera: Ident


class MoveParams(CameraParams):
    pan: Unit = 0.0
    tilt: Unit = 0.0
    zoom: Unit = 0.0
    # continuous: velocities (joystick; coalesced, stopped by the dead-man timer unless
    # followed up); relative: a step; absolute: a position. All -1..1.
    mode: Literal["continuous", "relative", "absolute"] = "continuous"


class PresetParams(CameraParams):
    preset: Token


class SetPresetParams(CameraParams):
    name: str = Field(min_length=1, max_length=64)
    # Overwrite this preset; a new one when absent.
    preset: Token | None = None


class SnapshotParams(CameraParams):
    # The profile whose snapshot to take; the smallest stream's when absent.
    profile: Token | None = None


class TourStopParams(Params):
    source: Ident
    dwell_s: float = Field(ge=0, le=86400, allow_inf_nan=False)
    preset: Token | None = None


class TourWindowParams(Params):
    wall: Ident | None = None
    window: Ident


class TourStartParams(TourWindowParams):
    stops: list[TourStopParams] = Field(min_length=1, max_length=256)
    # Start again after the last stop; false: stop there.
    loop: StrictBool = True


class CameraAnswer(Result):
    """The camera and what the action answered (sent, coalesced, presets, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    camera: str


class CameraList(Result):
    cameras: list[dict[str, Any]]


class TourAnswer(Result):
    model_config = ConfigDict(extra="allow", frozen=True)
    tour: dict[str, Any]


class TourList(Result):
    tours: list[dict[str, Any]]


def _svc(ctx: ApiContext) -> CameraService:
    return ctx.service("cameras", CameraService)


async def _action(
    ctx: ApiContext, actor: Actor, camera: str, name: str, args: dict[str, Any]
) -> Result:
    svc = _svc(ctx)
    svc.driver(camera, "params.camera")
    result = await svc.devices.call(camera, name, args, actor)
    return CameraAnswer(camera=camera, **result)


@method(
    "camera.list",
    "ONVIF cameras: status, device info, profiles (no credentials), "
    "events state, presets and the sources showing them.",
    "read",
    NoParams,
    CameraList,
)
async def _list(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return CameraList(cameras=_svc(ctx).list_cameras())


@method(
    "camera.ptz.move",
    "Move a camera: continuous (joystick), relative or absolute.",
    "ptz",
    MoveParams,
    CameraAnswer,
)
async def _move(ctx: ApiContext, actor: Actor, p: MoveParams, rev: int | None) -> Result:
    name = {"continuous": "ptz_move", "relative": "ptz_relative", "absolute": "ptz_absolute"}
    args = {"pan": p.pan, "tilt": p.tilt, "zoom": p.zoom}
    if p.mode != "continuous":
        return await _action(ctx, actor, p.camera, name[p.mode], args)
    # A joystick sends tens of these a second: straight to the driver (which coalesces
    # them), not one audit row each; stops, presets and positioned moves are audited.
    drv = _svc(ctx).driver(p.camera)
    try:
        result = await drv.call("ptz_move", args)
    except DriverError as e:
        raise driver_error(e, p.camera, "params") from None
    return CameraAnswer(camera=p.camera, **result)


@method("camera.ptz.stop", "Stop a camera's pan, tilt and zoom.", "ptz", CameraParams, CameraAnswer)
async def _stop(ctx: ApiContext, actor: Actor, p: CameraParams, rev: int | None) -> Result:
    return await _action(ctx, actor, p.camera, "ptz_stop", {})


@method("camera.ptz.home", "Send a camera to its home position.", "ptz", CameraParams, CameraAnswer)
async def _home(ctx: ApiContext, actor: Actor, p: CameraParams, rev: int | None) -> Result:
    return await _action(ctx, actor, p.camera, "home", {})


@method(
    "camera.ptz.presets",
    "A camera's PTZ presets (token and name).",
    "read",
    CameraParams,
    CameraAnswer,
)
async def _presets(ctx: ApiContext, actor: Actor, p: CameraParams, rev: int | None) -> Result:
    return await _action(ctx, actor, p.camera, "presets", {})


@method(
    "camera.ptz.goto_preset",
    "Send a camera to a preset (by token).",
    "ptz",
    PresetParams,
    CameraAnswer,
)
async def _goto(ctx: ApiContext, actor: Actor, p: PresetParams, rev: int | None) -> Result:
    return await _action(ctx, actor, p.camera, "goto_preset", {"preset": p.preset})


@method(
    "camera.ptz.set_preset",
    "Store a camera's position as a preset (new or "
    "overwritten); names are 1-64 characters without control characters.",
    "ptz",
    SetPresetParams,
    CameraAnswer,
)
async def _set(ctx: ApiContext, actor: Actor, p: SetPresetParams, rev: int | None) -> Result:
    args: dict[str, Any] = {"name": p.name}
    if p.preset is not None:
        args["preset"] = p.preset
    try:
        return await _action(ctx, actor, p.camera, "set_preset", args)
    except InvalidField as e:
        # The driver names its own field ("params.args.name"): ours is "params.name".
        field = (e.field or "").replace("params.args.", "params.")
        raise InvalidField(e.message, field=field) from None


@method("camera.ptz.remove_preset", "Delete a camera preset.", "ptz", PresetParams, CameraAnswer)
async def _remove(ctx: ApiContext, actor: Actor, p: PresetParams, rev: int | None) -> Result:
    return await _action(ctx, actor, p.camera, "remove_preset", {"preset": p.preset})


@method(
    "camera.snapshot",
    "A camera picture (JPEG, base64) for thumbnails.",
    "read",
    SnapshotParams,
    CameraAnswer,
)
async def _snapshot(ctx: ApiContext, actor: Actor, p: SnapshotParams, rev: int | None) -> Result:
    args = {} if p.profile is None else {"profile": p.profile}
    return await _action(ctx, actor, p.camera, "snapshot", args)


# --- tours ---------------------------------------------------------------------------------


def _wall(ctx: ApiContext, wall: str | None) -> str:
    return ctx.walls.resolve_wall(wall)


@method(
    "tour.start",
    "Cycle a window through sources (轮巡): dwell_s >= 3 each, optional "
    "PTZ preset per camera stop; replaces a tour already in that window.",
    "windows",
    TourStartParams,
    TourAnswer,
)
async def _tour_start(ctx: ApiContext, actor: Actor, p: TourStartParams, rev: int | None) -> Result:
    svc = _svc(ctx)
    wall = _wall(ctx, p.wall)
    if ctx.walls.state(wall).window(p.window) is None:
        raise NotFound(f"no window {p.window!r} on wall {wall!r}", field="params.window")
    stops = [svc.tour_stop(i, s.source, s.dwell_s, s.preset) for i, s in enumerate(p.stops)]
    tour = await svc.tours.start(wall, p.window, stops, actor, p.loop)
    return TourAnswer(tour=tour.to_dict())


def _tour(ctx: ApiContext, p: TourWindowParams) -> Any:
    svc = _svc(ctx)
    return svc, svc.tours.get(_wall(ctx, p.wall), p.window)


@method(
    "tour.pause",
    "Pause a window's tour (the current stop keeps its remaining dwell).",
    "windows",
    TourWindowParams,
    TourAnswer,
)
async def _tour_pause(
    ctx: ApiContext, actor: Actor, p: TourWindowParams, rev: int | None
) -> Result:
    svc, tour = _tour(ctx, p)
    return TourAnswer(tour=svc.tours.pause(tour, actor).to_dict())


@method("tour.resume", "Resume a paused tour.", "windows", TourWindowParams, TourAnswer)
async def _tour_resume(
    ctx: ApiContext, actor: Actor, p: TourWindowParams, rev: int | None
) -> Result:
    svc, tour = _tour(ctx, p)
    return TourAnswer(tour=svc.tours.resume(tour, actor).to_dict())


@method(
    "tour.stop",
    "Stop a window's tour (the window keeps its current source).",
    "windows",
    TourWindowParams,
    TourAnswer,
)
async def _tour_stop(ctx: ApiContext, actor: Actor, p: TourWindowParams, rev: int | None) -> Result:
    svc, tour = _tour(ctx, p)
    return TourAnswer(tour=(await svc.tours.stop(tour, actor)).to_dict())


@method(
    "tour.list",
    "Running and paused tours with their current stop and time left.",
    "read",
    NoParams,
    TourList,
)
async def _tour_list(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return TourList(tours=[t.to_dict() for t in _svc(ctx).tours.tours.values()])
