"""The Huawei TE driver against its simulator over HTTPS (self-signed) and HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sim_helpers import eventually

from drivers.cisco_xapi.farend import FarEnd
from drivers.contract import DriverSetup, DriverStatus
from drivers.errors import DeviceOffline, DeviceRejected, InvalidParams
from drivers.huawei_te import api
from drivers.huawei_te.driver import HuaweiTeConfig, HuaweiTeDriver
from drivers.huawei_te.simulator import HuaweiModel, HuaweiSimulator
from drivers.transport import TcpEndpoint

PASSWORD = "Change_Me"
FAST = FarEnd(setup_s=0.02, ring_s=0.02, drop_after_s=0.1)


@pytest.fixture(params=["https", "http"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[HuaweiSimulator]:
    s = HuaweiSimulator(HuaweiModel(password=PASSWORD, farend=FAST))
    await s.start(plain=request.param == "http")
    try:
        yield s
    finally:
        await s.stop()


def _driver(sim: HuaweiSimulator, password: str = PASSWORD) -> HuaweiTeDriver:
    cfg = HuaweiTeConfig(tls=sim.tls, poll_ms=200, retry_max_s=1)
    return HuaweiTeDriver(
        DriverSetup("te-a", cfg, TcpEndpoint("127.0.0.1", sim.port or 0), password=password)
    )


async def _up(d: HuaweiTeDriver) -> None:
    await d.start()
    await eventually(lambda: d.status is DriverStatus.OK, 10)


async def test_a_call_through_its_life(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        handle = (await d.call("dial", {"number": "sip:nanxun@10.33.1.10", "call_rate": 1920}))[
            "call_id"
        ]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        assert d.state["calls"][0]["call_rate"] == 1920
        await d.call("mute", {})
        await d.call("presentation_start", {"source": 2})
        await eventually(lambda: d.state["microphones_muted"] is True)
        await eventually(lambda: d.state["presentation"] == {"mode": "Sending", "source": 2})
        sim.model.hangup_remote()
        await eventually(lambda: d.state["calls"] == [])
        await eventually(lambda: (d.state.get("last_disconnect") or {}).get("call_id") == handle)
        assert d.state["last_disconnect"]["reason"] == "remote_hangup"
        await eventually(lambda: d.state["presentation"]["mode"] == "Off")
        for number, reason in (("busy@x", "busy"), ("unreachable@x", "unreachable")):
            h = (await d.call("dial", {"number": number}))["call_id"]
            await eventually(lambda h=h: (d.state.get("last_disconnect") or {}).get("call_id") == h)
            assert d.state["last_disconnect"]["reason"] == reason
        h = (await d.call("dial", {"number": "sip:wuxing@x"}))["call_id"]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        await d.call("disconnect", {})
        await eventually(lambda: (d.state.get("last_disconnect") or {}).get("call_id") == h)
        assert d.state["last_disconnect"]["reason"] == "local_hangup"
        assert [name for name, _ in sim.model.events][:3] == [
            "MSG_CALL_CALLING",
            "MSG_CALL_ALERTING",
            "MSG_CALL_CONNECTED",
        ]
    finally:
        await d.stop()


async def test_session_expiry_logs_in_again_and_repeats(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        logins = d.logins
        sim.model.expire_sessions()
        await d.call("mute", {})
        assert sim.model.mic_on is False
        assert d.logins == logins + 1
        assert d.status is DriverStatus.OK
    finally:
        await d.stop()


async def test_hostile_numbers_never_reach_the_endpoint(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        for hostile in ('sip:a"@b', "a\r\nWEB_RebootAPI", "a b", "a\x00"):
            with pytest.raises(InvalidParams):
                await d.call("dial", {"number": hostile})
        assert not [a for a, _ in sim.model.actions if a == "WEB_CallNumberAPI"]
    finally:
        await d.stop()


async def test_refusals_are_the_endpoints_own(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        with pytest.raises(DeviceRejected) as e:
            await d.call("presentation_start", {"source": 1})  # not in a call
        assert e.value.code == str(api.ERR_STATE)
        with pytest.raises(DeviceRejected) as e:
            await d.call("disconnect", {"call_id": 9})
        assert e.value.code == str(api.ERR_NO_SUCH_SITE)
        await d.call("dial", {"number": "sip:a@b"})
        with pytest.raises(DeviceRejected):
            await d.call("dial", {"number": "sip:c@d"})  # one site at a time
    finally:
        await d.stop()


async def test_wrong_password_is_an_auth_failure_without_hammering(sim: HuaweiSimulator) -> None:
    d = _driver(sim, password="wrong")
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.AUTH_FAILURE, 10)
        with pytest.raises(DeviceOffline):
            await d.call("mute", {})
        # Retries wait at the backoff cap: no lock-out of the account.
        assert sim.model.locked_until == 0.0
    finally:
        await d.stop()


async def test_endpoint_offline_then_back(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    port, plain = sim.port, not sim.tls
    try:
        await sim.stop()
        await eventually(lambda: d.status is DriverStatus.CONNECTION_FAILURE, 10)
        with pytest.raises(DeviceOffline):
            await d.call("mute", {})
        back = HuaweiSimulator(HuaweiModel(password=PASSWORD, farend=FAST))
        await back.start(port=port or 0, plain=plain)
        try:
            await eventually(lambda: d.status is DriverStatus.OK, 15)
            await d.call("mute", {})
            assert back.model.mic_on is False
        finally:
            await back.stop()
    finally:
        await d.stop()


async def test_simulator_speaks_the_envelope_to_a_plain_client(sim: HuaweiSimulator) -> None:
    base = f"{'https' if sim.tls else 'http'}://127.0.0.1:{sim.port}/action.cgi?ActionID="
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.post(base + "WEB_RequestSessionIDAPI", ssl=False) as r:
            assert r.status == 200
            sid = api.session_cookie(r.headers.items())
            body = await r.read()
        assert sid and isinstance(api.decode_reply(200, body), dict)
        cookie = {"Cookie": f"SessionID={sid}"}
        # Without the CSRF token: refused as a session error.
        async with http.post(base + "WEB_OpenMicAPI", data=b"{}", headers=cookie, ssl=False) as r:
            with pytest.raises(api.SessionExpired):
                api.decode_reply(r.status, await r.read())
        async with http.post(
            base + "WEB_OpenMicAPI", data=b"{not json", headers=cookie, ssl=False
        ) as r:
            with pytest.raises(api.ApiFailure) as e:
                api.decode_reply(r.status, await r.read())
            assert e.value.code == api.ERR_BAD_PARAM
        async with http.post(base + "WEB_Reboot", headers=cookie, ssl=False) as r:
            with pytest.raises(api.ApiFailure):
                api.decode_reply(r.status, await r.read())
