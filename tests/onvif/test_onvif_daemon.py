"""Cameras in a running daemon: API methods, PTZ coalescing and dead-man, events, faults."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.request
from pathlib import Path

import pytest
from camrig import (
    CAM_PW,
    Rig,
    camera_device,
    eventually,
    rig_fixture,  # noqa: F401 (the "rig" fixture)
    start_rig,
    stop_rig,
)

from drivers.contract import DriverStatus
from drivers.onvif.simulator import FakeCamera, FakeProfile
from wallctl.client import ApiError, open_client
from wallctl.logs import StructFormatter


async def expect_error(c: object, method: str, params: dict[str, object]) -> ApiError:
    try:
        await c.call(method, params)  # type: ignore[attr-defined]
    except ApiError as e:
        return e
    raise AssertionError(f"{method} {params} was accepted")


async def test_ptz_presets_snapshot_and_listing_over_the_api(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cam = rig.cameras["ptz1"]
    async with open_client(
        rig.api_url, account="admin", password=rig.admin_password, validate=True
    ) as c:
        listed = (await c.call("camera.list"))["cameras"]
        assert [x["camera"] for x in listed] == ["fixed1", "ptz1"]
        ptz = listed[1]
        assert ptz["status"] == "ok" and ptz["info"]["model"] == "FakeCam PTZ"
        assert ptz["info"]["ptz"] is True and listed[0]["info"]["ptz"] is False
        assert [(p["token"], p["width"], p["height"], p["codec"]) for p in ptz["profiles"]] == [
            ("main", 1920, 1080, "H264"),
            ("sub", 640, 360, "H264"),
        ]
        assert ptz["sources"] == ["cam-ptz"]

        r = await c.call("camera.ptz.move", {"camera": "ptz1", "pan": 0.5, "tilt": -0.5})
        assert r["sent"] is True and r["deadman_ms"] == 400
        moves = [x for x in cam.calls if x.operation == "ContinuousMove"]
        assert moves[-1].args["velocity"] == (0.5, -0.5, 0.0)
        await c.call("camera.ptz.stop", {"camera": "ptz1"})
        assert cam.velocity == (0.0, 0.0, 0.0)
        await c.call(
            "camera.ptz.move", {"camera": "ptz1", "pan": 0.2, "tilt": 0.1, "mode": "absolute"}
        )
        assert cam.position == (0.2, 0.1, 0.0)
        made = await c.call("camera.ptz.set_preset", {"camera": "ptz1", "name": "东门"})
        presets = (await c.call("camera.ptz.presets", {"camera": "ptz1"}))["presets"]
        assert {"token": made["preset"], "name": "东门"} in presets
        await c.call("camera.ptz.home", {"camera": "ptz1"})
        assert cam.position == (0.0, 0.0, 0.0)
        await c.call("camera.ptz.goto_preset", {"camera": "ptz1", "preset": made["preset"]})
        assert cam.position == (0.2, 0.1, 0.0)
        await c.call("camera.ptz.remove_preset", {"camera": "ptz1", "preset": made["preset"]})
        assert made["preset"] not in cam.presets

        snap = await c.call("camera.snapshot", {"camera": "fixed1"})
        assert snap["content_type"] == "image/jpeg"
        assert base64.b64decode(snap["jpeg_base64"]).startswith(b"\xff\xd8")

        # Bad input: each answered with the exact error, nothing sent to the camera.
        sent = len(cam.requests)
        e = await expect_error(c, "camera.ptz.set_preset", {"camera": "ptz1", "name": "a\r\nb"})
        assert e.code == "invalid_field" and e.field == "params.name"
        assert "control characters" in e.message
        e = await expect_error(c, "camera.ptz.move", {"camera": "ptz1", "pan": 2.0})
        assert e.code == "invalid_field" and e.field == "params.pan"
        e = await expect_error(c, "camera.ptz.goto_preset", {"camera": "ptz1", "preset": "a b"})
        assert e.code == "invalid_field"
        e = await expect_error(c, "camera.ptz.goto_preset", {"camera": "ptz1", "preset": "99"})
        assert e.code == "device_error" and "ter:NoToken" in e.message
        e = await expect_error(c, "camera.ptz.move", {"camera": "nope", "pan": 0.1})
        assert e.code == "not_found" and e.field == "params.camera"
        # Only the camera-side refusal reached it (event pulls may interleave).
        ptz_calls = [r for r in cam.requests[sent:] if r not in ("PullMessages", "Renew")]
        assert ptz_calls == ["GotoPreset"], cam.requests[sent:]
        # A camera without PTZ: a clear "unsupported", never a SOAP call.
        fixed = rig.cameras["fixed1"]
        before = len(fixed.requests)
        e = await expect_error(c, "camera.ptz.move", {"camera": "fixed1", "pan": 0.1})
        assert e.code == "device_error" and "has no PTZ" in e.message
        assert len(fixed.requests) == before

        # Secrets never leave the daemon: not in answers, events or metrics.
        everything = json.dumps(await c.call("camera.list")) + json.dumps(
            await c.call("device.list")
        )
        assert CAM_PW not in everything
    metrics = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"{rig.rt.http.url}/metrics").read().decode()
    )
    assert 'wallctl_camera_up{camera="ptz1"} 1.0' in metrics
    assert CAM_PW not in metrics
    assert CAM_PW not in json.dumps([e.data for e in rig.events], default=str)
    # ... nor in any log line, every level, every logger (zeep and onvif's included).
    formatter = StructFormatter("kv")
    lines = [formatter.format(r) for r in caplog.records]
    assert lines and not [line for line in lines if CAM_PW in line]


async def test_joystick_moves_are_coalesced_and_a_lost_client_is_stopped(rig: Rig) -> None:
    cam = rig.cameras["ptz1"]
    drv = rig.service.driver("ptz1")
    start = len(cam.calls)
    # 40 moves over ~0.4 s (100 per second) with coalesce_ms = 100.
    t0 = time.monotonic()
    for i in range(40):
        await rig.devices.call("ptz1", "ptz_move", {"pan": round(0.01 * (i + 1), 2)})
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - t0
    await eventually(lambda: cam.velocity == (0.4, 0.0, 0.0), 3)
    moves = [c for c in cam.calls[start:] if c.operation == "ContinuousMove"]
    # One per 100 ms interval, plus the first and the trailing latest one.
    assert 2 <= len(moves) <= elapsed / 0.1 + 3, (len(moves), elapsed)
    assert drv.joystick.coalesced >= 40 - len(moves)
    assert moves[-1].args["velocity"] == (0.4, 0.0, 0.0)  # the latest velocity won
    # At most one move per interval (on average: the camera's clock sees network jitter).
    assert (moves[-1].at - moves[0].at) / (len(moves) - 1) >= 0.08
    # No follow-up: the dead-man (400 ms) stops the camera.
    t0 = time.monotonic()
    await eventually(lambda: cam.calls[-1].operation == "Stop", 3)
    assert cam.velocity == (0.0, 0.0, 0.0)
    assert time.monotonic() - t0 < 2.0
    assert drv.joystick.deadman_stops >= 1
    # A steady stream of follow-ups keeps it moving past the dead-man time.
    n = len(cam.calls)
    for _ in range(8):
        await rig.devices.call("ptz1", "ptz_move", {"tilt": 0.3})
        await asyncio.sleep(0.1)
    assert all(c.operation == "ContinuousMove" for c in cam.calls[n:])


async def test_motion_and_tamper_events_reach_the_bus(rig: Rig) -> None:
    cam = rig.cameras["ptz1"]
    await eventually(lambda: cam.subscriptions, 8)
    async with open_client(
        rig.api_url, account="admin", password=rig.admin_password, subscriptions=["camera"]
    ) as c:
        cam.emit("motion", "vsc0", True)
        cam.emit("tamper", "vsc0", True)
        seen: dict[str, dict[str, object]] = {}
        async with asyncio.timeout(8):
            while len(seen) < 2:
                ev = await c.next_event()
                if ev["type"] in ("camera.motion", "camera.tamper"):
                    seen[ev["type"]] = ev["data"]
    assert seen["camera.motion"]["device"] == "ptz1" and seen["camera.motion"]["active"] is True
    assert "CellMotionDetector" in str(seen["camera.motion"]["topic"])
    assert seen["camera.tamper"]["source"] == {"VideoSourceConfigurationToken": "vsc0"}
    assert rig.service.driver("ptz1").state["motion"] is True


async def test_subscription_renewed_and_an_expired_one_marked_stale_then_replaced(
    tmp_path: Path,
) -> None:
    cam = await FakeCamera(password=CAM_PW).start()
    rig = await start_rig(
        tmp_path,
        devices=[camera_device("ptz1", cam.port, subscription_s=4)],
        cameras={"ptz1": cam},
    )
    try:
        drv = rig.service.driver("ptz1")
        await eventually(lambda: drv.state.get("events") == "ok", 8)
        # Renewed before the 4 s lifetime ran out (at half of it), never unsubscribed.
        await eventually(lambda: drv.renewals >= 1, 8)
        assert drv.subscriptions == 1 and "Renew" in cam.requests
        # The camera forgets it (its lifetime ran out while unreachable, or a reboot).
        cam.reboot()
        await eventually(lambda: rig.camera_events("camera.events_stale"), 8)
        await eventually(lambda: drv.subscriptions == 2 and drv.state["events"] == "ok", 8)
        assert "Unsubscribe" not in cam.requests
        cam.emit("motion", "vsc0", False)
        await eventually(lambda: rig.camera_events("camera.motion"), 8)
    finally:
        await stop_rig(rig)


async def test_offline_at_start_retries_then_connects(tmp_path: Path) -> None:
    # A port with nothing behind it (yet).
    probe = await FakeCamera(password=CAM_PW).start()
    port = probe.port
    await probe.stop()
    cam = FakeCamera(password=CAM_PW)
    rig = await start_rig(
        tmp_path, devices=[camera_device("ptz1", port)], cameras={"ptz1": cam}, wait=False
    )
    try:
        drv = rig.service.driver("ptz1")
        await eventually(lambda: drv.status is DriverStatus.CONNECTION_FAILURE, 8)
        assert "cannot reach" in drv.status_detail and "retrying" in drv.status_detail

        def seen(status: str) -> int:
            return sum(
                1 for e in rig.events if e.type == "device.status" and e.data["status"] == status
            )

        await eventually(lambda: seen("connecting") >= 2 and seen("connection_failure") >= 2, 8)
        await cam.start(port)
        await eventually(lambda: drv.status is DriverStatus.OK, 10)
        async with open_client(rig.api_url, account="admin", password=rig.admin_password) as c:
            await c.call("camera.ptz.move", {"camera": "ptz1", "pan": 0.1})
        assert cam.velocity == (0.1, 0.0, 0.0)
    finally:
        await stop_rig(rig)


async def test_wrong_password_is_auth_failure_without_a_retry_storm(tmp_path: Path) -> None:
    cam = await FakeCamera(password=CAM_PW).start()
    rig = await start_rig(
        tmp_path,
        devices=[camera_device("ptz1", cam.port, password="wrong", retry_max_s=30)],
        cameras={"ptz1": cam},
        wait=False,
    )
    try:
        drv = rig.service.driver("ptz1")
        await eventually(lambda: drv.status is DriverStatus.AUTH_FAILURE, 8)
        assert "refused the user name or password" in drv.status_detail
        n = len(cam.requests)
        await asyncio.sleep(2.0)
        assert len(cam.requests) == n  # waits at the backoff cap (30 s): no login storm
        async with open_client(rig.api_url, account="admin", password=rig.admin_password) as c:
            e = await expect_error(c, "camera.ptz.move", {"camera": "ptz1", "pan": 0.1})
            assert e.code == "device_not_ready" and "auth_failure" in e.message
    finally:
        await stop_rig(rig)


async def test_slow_camera_times_out_and_the_daemon_stays_responsive(rig: Rig) -> None:
    cam = rig.cameras["ptz1"]
    cam.delay_s = 6.0
    try:
        async with (
            open_client(rig.api_url, account="admin", password=rig.admin_password) as c,
            open_client(rig.api_url, account="admin", password=rig.admin_password) as other,
        ):
            slow = asyncio.create_task(c.call("camera.ptz.home", {"camera": "ptz1"}))
            await asyncio.sleep(0.2)
            # Meanwhile (another client): the listing, the wall and the other camera answer.
            t0 = time.monotonic()
            assert (await other.call("camera.list"))["cameras"]
            await other.call("wall.get", {})
            await other.call("camera.snapshot", {"camera": "fixed1"})
            assert time.monotonic() - t0 < 1.5
            assert not slow.done()
            with pytest.raises(ApiError) as e:
                await slow
            assert e.value.code == "device_not_ready"
            # Our 2 s timeout, or the link dropped by the event pull timing out first.
            assert "GotoHomePosition" in e.value.message
            assert time.monotonic() - t0 < 3.5
    finally:
        cam.delay_s = 0


async def test_profiles_changed_after_reboot_feed_the_new_streams(rig: Rig) -> None:
    cam = rig.cameras["ptz1"]
    drv = rig.service.driver("ptz1")
    src = rig.service.sources["cam-ptz"]
    assert [r.name for r in rig.service.renditions(src)] == ["main", "sub"]
    port = cam.port
    await cam.stop()
    cam.reboot([FakeProfile("hd", "HD", 1280, 720, "H265", "rtsp://127.0.0.1:9/hd")])
    await eventually(lambda: drv.status is not DriverStatus.OK, 10)
    await cam.start(port)
    await eventually(lambda: drv.status is DriverStatus.OK, 10)
    await eventually(lambda: rig.camera_events("camera.profiles"), 5)
    changed = rig.camera_events("camera.profiles")[-1]
    assert [p["token"] for p in changed["profiles"]] == ["hd"]
    renditions = rig.service.renditions(src)
    assert [(r.name, r.width, r.url) for r in renditions] == [
        ("hd", 1280, f"rtsp://admin:{CAM_PW}@127.0.0.1:9/hd")
    ]
    # ... and the URL with credentials stays inside: the event carries none.
    assert CAM_PW not in json.dumps(changed)


async def test_without_events_the_link_is_kept_alive_and_a_loss_noticed(tmp_path: Path) -> None:
    cam = await FakeCamera(password=CAM_PW).start()
    rig = await start_rig(
        tmp_path,
        devices=[camera_device("ptz1", cam.port, events=False, keepalive_s=0.3)],
        cameras={"ptz1": cam},
    )
    try:
        drv = rig.service.driver("ptz1")
        assert drv.state["events"] == "off"
        n = cam.requests.count("GetSystemDateAndTime")
        await eventually(lambda: cam.requests.count("GetSystemDateAndTime") >= n + 2, 5)
        assert drv.status is DriverStatus.OK and "CreatePullPointSubscription" not in cam.requests
        await cam.stop()
        await eventually(lambda: drv.status is DriverStatus.CONNECTION_FAILURE, 8)
    finally:
        await stop_rig(rig)
