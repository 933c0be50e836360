"""The ONVIF client (onvif-zeep-async + our mapping) against the fake camera on a real port."""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.request

import pytest
from aiohttp import web
from camrig import (
    CAM_PW,
    camera_fixture,  # noqa: F401 (the "camera" fixture)
)

from drivers.errors import AuthFailed, DeviceOffline, DeviceTimeout, InvalidParams
from drivers.onvif import soap
from drivers.onvif.client import (
    CameraClient,
    NotOnvif,
    Unsupported,
    strip_credentials,
    with_credentials,
)
from drivers.onvif.simulator import FakeCamera, FakeProfile


async def connected(
    cam: FakeCamera, password: str = CAM_PW, timeout_s: float = 3.0
) -> CameraClient:
    client = CameraClient("127.0.0.1", cam.port, "admin", password, timeout_s=timeout_s)
    await client.connect()
    return client


async def test_start_up_sequence_gives_info_profiles_and_clock(camera: FakeCamera) -> None:
    camera.profiles[0].stream_uri = "rtsp://127.0.0.1:8554/main"
    camera.profiles[1].stream_uri = "rtsp://127.0.0.1:8554/sub"
    client = await connected(camera)
    try:
        info = client.info
        assert (info.manufacturer, info.model, info.firmware, info.serial) == (
            "Wallctl",
            "FakeCam PTZ",
            "1.0.0",
            "FC-0001",
        )
        assert info.ptz and info.events and info.clock_ok
        assert info.clock_offset_s is not None and abs(info.clock_offset_s) < 2.5
        assert [(p.token, p.width, p.height, p.codec, p.uri) for p in client.profiles] == [
            ("main", 1920, 1080, "H264", "rtsp://127.0.0.1:8554/main"),
            ("sub", 640, 360, "H264", "rtsp://127.0.0.1:8554/sub"),
        ]
        # Credentials go into the URI only on request, percent-encoded.
        assert client.stream_uri("sub") == f"rtsp://admin:{CAM_PW}@127.0.0.1:8554/sub"
        # The fixed start-up sequence, clock first and without credentials.
        assert camera.requests[:3] == [
            "GetSystemDateAndTime",
            "GetServices",
            "GetDeviceInformation",
        ]
    finally:
        await client.close()


async def test_a_camera_clock_far_off_is_flagged_and_still_works(camera: FakeCamera) -> None:
    # Ten minutes off: beyond the 5 minutes the camera accepts a token's time from.
    camera.clock_offset_s = 600.0
    client = CameraClient("127.0.0.1", camera.port, "admin", CAM_PW)
    try:
        info = await client.connect()
        assert info.clock_offset_s is not None and 597 < info.clock_offset_s < 603
        assert not info.clock_ok
        # Tokens were stamped on the camera's clock: authenticated calls go through.
        assert [p.token for p in client.profiles] == ["main", "sub"]
        await client.continuous_move(0.1, 0, 0)
        assert camera.velocity == (0.1, 0.0, 0.0)
    finally:
        await client.close()


async def test_wrong_password_is_an_auth_failure_from_a_real_fault(camera: FakeCamera) -> None:
    client = CameraClient("127.0.0.1", camera.port, "admin", "wrong")
    with pytest.raises(AuthFailed):
        await client.connect()
    await client.close()
    # What the camera sent: the SOAP 1.2 fault with the ter:NotAuthorized subcode.
    body = (
        f'<s:Envelope xmlns:s="{soap.NS["s"]}"><s:Body>'
        f'<GetDeviceInformation xmlns="{soap.NS["tds"]}"/></s:Body></s:Envelope>'
    ).encode()
    req = urllib.request.Request(
        f"{camera.base}/onvif/device_service",
        data=body,
        headers={"Content-Type": "application/soap+xml"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        await asyncio.to_thread(urllib.request.urlopen, req, None, 5)
    assert err.value.code == 400
    fault = err.value.read().decode()
    assert "<s:Value>ter:NotAuthorized</s:Value>" in fault and "s:Sender" in fault


def test_digest_check_rejects_replays_far_from_the_camera_clock() -> None:
    import datetime as dt

    nonce = base64.b64encode(b"0123456789abcdef").decode()
    created = "2020-01-01T00:00:00Z"
    req = soap.Request(
        "GetProfiles",
        None,
        "admin",
        soap.password_digest(nonce, created, "pw"),
        nonce,
        created,
        None,
    )
    with pytest.raises(soap.SoapError) as e:
        soap.check_token(req, "admin", "pw", dt.datetime.now(dt.UTC))
    assert e.value.subcode == "ter:NotAuthorized"
    soap.check_token(req, "admin", "pw", dt.datetime(2020, 1, 1, 0, 1, tzinfo=dt.UTC))


async def test_ptz_moves_presets_and_home(camera: FakeCamera) -> None:
    client = await connected(camera)
    try:
        await client.continuous_move(0.5, -0.25, 0.0)
        assert camera.velocity == (0.5, -0.25, 0.0)
        await client.stop()
        assert camera.velocity == (0.0, 0.0, 0.0)
        await client.absolute_move(0.2, 0.3, 0.4)
        assert camera.position == (0.2, 0.3, 0.4)
        await client.relative_move(0.1, -0.1, 0.0)
        assert camera.position == pytest.approx((0.3, 0.2, 0.4))
        token = await client.set_preset("北门 Gate 2")
        assert [(p.token, p.name) for p in await client.presets()] == [
            ("1", "Gate"),
            (token, "北门 Gate 2"),
        ]
        await client.home()
        assert camera.position == (0.0, 0.0, 0.0)
        await client.goto_preset(token)
        assert camera.position == pytest.approx((0.3, 0.2, 0.4))
        await client.remove_preset(token)
        assert [p.token for p in await client.presets()] == ["1"]
        with pytest.raises(InvalidParams) as bad:
            await client.continuous_move(1.5, 0, 0)
        assert bad.value.field == "pan"
    finally:
        await client.close()


async def test_preset_names_with_control_characters_never_reach_the_camera(
    camera: FakeCamera,
) -> None:
    client = await connected(camera)
    try:
        for name in ("Gate\r\nEvil", "Tab\there", "nul\x00", "del\x7f", "c1\x85", "", "x" * 65):
            with pytest.raises(InvalidParams) as e:
                await client.set_preset(name)
            assert e.value.field == "name"
        assert "SetPreset" not in camera.requests
        assert list(camera.presets) == ["1"]
    finally:
        await client.close()


async def test_ptz_on_a_camera_without_ptz_is_unsupported() -> None:
    cam = await FakeCamera(password=CAM_PW, ptz=False).start()
    client = await connected(cam)
    try:
        assert not client.info.ptz
        before = list(cam.requests)
        with pytest.raises(Unsupported, match="has no PTZ"):
            await client.continuous_move(0.1, 0, 0)
        with pytest.raises(Unsupported):
            await client.presets()
        assert cam.requests == before  # refused here, not sent
    finally:
        await client.close()
        await cam.stop()


async def test_snapshot_over_http_digest(camera: FakeCamera) -> None:
    client = await connected(camera)
    try:
        jpeg = await client.snapshot("sub")
        assert jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")
    finally:
        await client.close()
    # Without credentials the snapshot URL asks for digest authentication.
    with pytest.raises(urllib.error.HTTPError) as e:
        await asyncio.to_thread(urllib.request.urlopen, f"{camera.base}/snapshot/sub.jpg", None, 5)
    assert e.value.code == 401 and "Digest" in e.value.headers["WWW-Authenticate"]


async def test_slow_replies_time_out_on_our_clock(camera: FakeCamera) -> None:
    client = await connected(camera, timeout_s=0.5)
    camera.delay_s = 5.0
    try:
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"ContinuousMove: no answer within 0\.5 s"):
            await client.continuous_move(0.1, 0, 0)
        assert time.monotonic() - started < 2.5
    finally:
        camera.delay_s = 0
        await client.close()


async def test_unreachable_and_not_onvif() -> None:
    client = CameraClient("127.0.0.1", 1, "admin", "x", timeout_s=2)
    with pytest.raises(DeviceOffline, match=r"cannot reach 127\.0\.0\.1:1"):
        await client.connect()
    await client.close()

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>router login</body></html>", status=404, content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = CameraClient("127.0.0.1", port, "admin", "x", timeout_s=2)
    try:
        with pytest.raises(NotOnvif, match="does not answer as an ONVIF device"):
            await client.connect()
    finally:
        await client.close()
        await runner.cleanup()


async def test_profiles_changed_after_reboot_are_read_again(camera: FakeCamera) -> None:
    client = await connected(camera)
    try:
        assert [p.token for p in client.profiles] == ["main", "sub"]
        camera.reboot([FakeProfile("p4k", "4K", 3840, 2160, "H265", "rtsp://h/4k")])
        await client.load_profiles()
        assert [(p.token, p.width, p.codec) for p in client.profiles] == [("p4k", 3840, "H265")]
    finally:
        await client.close()


def test_credentials_are_stripped_and_inserted() -> None:
    assert strip_credentials("rtsp://u:p@cam:554/a?b=1") == "rtsp://cam:554/a?b=1"
    assert strip_credentials("rtsp://cam/a") == "rtsp://cam/a"
    assert with_credentials("rtsp://old:x@cam/a", "ad min", "p@ss:w/d") == (
        "rtsp://ad%20min:p%40ss%3Aw%2Fd@cam/a"
    )
    assert with_credentials("rtsp://cam/a", None, "pw") == "rtsp://cam/a"


def test_soap_parser_refuses_hostile_xml() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
        b"<x>&b;</x></s:Body></s:Envelope>"
    )
    req = soap.parse_request(bomb)  # entities are not expanded
    assert "aaaa" not in (req.body.text or "")
    with pytest.raises(soap.SoapError) as e:
        soap.parse_request(b"<not-xml")
    assert e.value.subcode == "ter:WellFormed"
    with pytest.raises(soap.SoapError):
        soap.parse_request(b"<a/>" * (soap.MAX_REQUEST // 4 + 1))
    assert soap.parse_duration("PT1M30S") == 90
    with pytest.raises(soap.SoapError):
        soap.parse_duration("P1D")
