"""The Huawei TE driver against its simulator over HTTPS (self-signed) and HTTP, and the
simulator's answers against the document's own examples."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sim_helpers import eventually

from drivers.cisco_xapi.farend import FarEnd
from drivers.contract import DriverSetup, DriverStatus
from drivers.errors import DeviceOffline, DeviceRejected, InvalidParams
from drivers.huawei_te import api
from drivers.huawei_te.driver import HuaweiTeConfig, HuaweiTeDriver
from drivers.huawei_te.simulator import HuaweiModel, HuaweiSimulator

PASSWORD = "Change_Me"


def _fast() -> FarEnd:
    return FarEnd(setup_s=0.02, ring_s=0.02, drop_after_s=0.1)


async def _sim(plain: bool = True, **model: Any) -> HuaweiSimulator:
    s = HuaweiSimulator(
        HuaweiModel(password=PASSWORD, farend=model.pop("farend", _fast()), **model)
    )
    await s.start(plain=plain)
    return s


@pytest.fixture
async def sim() -> AsyncIterator[HuaweiSimulator]:
    s = await _sim()
    try:
        yield s
    finally:
        await s.stop()


def _driver(sim: HuaweiSimulator, password: str = PASSWORD) -> HuaweiTeDriver:
    cfg = HuaweiTeConfig(tls=sim.tls, poll_ms=200, retry_max_s=1, timeout_ms=2000)
    from drivers.transport import TcpEndpoint

    return HuaweiTeDriver(
        DriverSetup("te-a", cfg, TcpEndpoint("127.0.0.1", sim.port or 0), password=password)
    )


async def _up(d: HuaweiTeDriver) -> None:
    await d.start()
    await eventually(lambda: d.status is DriverStatus.OK, 10)


def _ended(d: HuaweiTeDriver, handle: int) -> bool:
    return (d.state.get("last_disconnect") or {}).get("call_id") == handle


def _sent(sim: HuaweiSimulator, action: str) -> list[dict[str, Any]]:
    return [body for name, body in sim.model.actions if name == action]


@pytest.mark.parametrize("plain", [False, True], ids=["https", "http"])
async def test_a_call_through_its_life(plain: bool) -> None:
    sim = await _sim(plain)
    d = _driver(sim)
    await _up(d)
    try:
        handle = (await d.call("dial", {"number": "sip:nanxun@10.33.1.10", "call_rate": 1920}))[
            "call_id"
        ]
        # The call's id is the endpoint's own site handle.
        assert handle in sim.model.sites or _ended(d, handle)
        assert _sent(sim, api.CALL_NUMBER) == [{"szNumber": "sip:nanxun@10.33.1.10"}]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        call = d.state["calls"][0]
        assert (call["id"], call["direction"], call["remote_number"]) == (
            handle,
            "Outgoing",
            "sip:nanxun@10.33.1.10",
        )
        assert call["display_name"] == "nanxun"  # MSG_CALL_RSP Data.param1
        await d.call("mute", {})
        await d.call("presentation_start", {"source": 2})
        await eventually(lambda: d.state["microphones_muted"] is True)
        await eventually(lambda: d.state["presentation"] == {"mode": "Sending", "source": 2})
        assert _sent(sim, api.START_AUX) == [{}] and _sent(sim, api.CLOSE_MIC) == [{}]
        sim.model.hangup_remote()
        await eventually(lambda: d.state["calls"] == [] and _ended(d, handle))
        assert d.state["last_disconnect"]["reason"] == "remote_hangup"
        await eventually(lambda: d.state["presentation"]["mode"] == "Off")
        h = (await d.call("dial", {"number": "sip:wuxing@x"}))["call_id"]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        await d.call("disconnect", {})
        await eventually(lambda: _ended(d, h))
        assert d.state["last_disconnect"]["reason"] == "local_hangup"
        assert _sent(sim, api.HANGUP_CALL) == [{"ucSiteHandle": h}]
    finally:
        await d.stop()
        await sim.stop()


@pytest.mark.parametrize(
    ("number", "reason", "code"),
    [
        ("busy@x", "busy", 486),
        ("unreachable@x", "unreachable", 404),
        ("reject@x", "rejected", 603),
    ],
)
async def test_failed_calls_carry_the_endpoints_cause(
    sim: HuaweiSimulator, number: str, reason: str, code: int
) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        h = (await d.call("dial", {"number": number}))["call_id"]
        assert isinstance(h, int)
        await eventually(lambda: _ended(d, h))
        assert d.state["last_disconnect"]["reason"] == reason
        assert d.state["last_disconnect"]["code"] == code
        assert d.state["calls"] == []
    finally:
        await d.stop()


async def test_a_dial_still_ringing_is_cancelled(sim: HuaweiSimulator) -> None:
    sim.model.farend = FarEnd(setup_s=0.01, ring_s=30)
    d = _driver(sim)
    await _up(d)
    try:
        h = (await d.call("dial", {"number": "sip:slow@x"}))["call_id"]
        assert [c["status"] for c in d.state["calls"]] == ["dialling"]
        await d.call("disconnect", {"call_id": h})
        assert _sent(sim, api.CANCEL_CALL) == [{"ucSiteHandle": h}]
        await eventually(lambda: _ended(d, h))
        assert d.state["last_disconnect"]["reason"] == "local_hangup"
        assert sim.model.sites == {}
    finally:
        await d.stop()


async def test_a_call_being_set_up_is_read_faster_than_the_poll(sim: HuaweiSimulator) -> None:
    sim.model.farend = FarEnd(setup_s=0.05, ring_s=0.1)
    cfg = HuaweiTeConfig(tls=False, poll_ms=10000, setup_poll_ms=100, timeout_ms=2000)
    from drivers.transport import TcpEndpoint

    d = HuaweiTeDriver(
        DriverSetup("te-b", cfg, TcpEndpoint("127.0.0.1", sim.port or 0), password=PASSWORD)
    )
    await _up(d)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await d.call("dial", {"number": "sip:quick@x"})
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"], 5)
        # Generous for a loaded machine, yet far below the 10 s poll.
        assert loop.time() - start < 3
    finally:
        await d.stop()


async def test_incoming_calls_are_answered_or_refused(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        h = sim.model.incoming("sip:huzhou@10.33.0.1")
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["ringing"])
        assert d.state["calls"][0]["direction"] == "Incoming"
        assert d.state["calls"][0]["remote_number"] == "sip:huzhou@10.33.0.1"
        await d.call("accept", {})
        assert _sent(sim, api.INCOMING_CALL_PROC) == [
            {"ucValue": 1, "ucMediaType": 1, "ucSiteHandle": h}
        ]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        await d.call("disconnect", {})
        await eventually(lambda: _ended(d, h))
        h2 = sim.model.incoming("+8657212345678")
        await eventually(lambda: [c["id"] for c in d.state["calls"]] == [h2])
        await d.call("reject", {"call_id": h2})
        await eventually(lambda: _ended(d, h2))
        assert d.state["last_disconnect"]["reason"] == "local_hangup"
        assert _sent(sim, api.INCOMING_CALL_PROC)[-1]["ucValue"] == 0
        with pytest.raises(DeviceRejected, match="no incoming call"):
            await d.call("accept", {})
    finally:
        await d.stop()


async def test_session_expiry_logs_in_again_and_repeats_once(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        logins = d.logins
        # The login ended on a fresh id (IdeaHub 更换SessionID): one session is open.
        assert len(sim.model.sessions) == 1
        sim.model.expire_sessions()
        await d.call("mute", {})
        assert sim.model.mic_on is False
        assert d.logins == logins + 1
        assert _sent(sim, api.CLOSE_MIC) == [{}]  # refused once unseen, then done once
        assert d.status is DriverStatus.OK
    finally:
        await d.stop()


async def test_refusals_are_the_endpoints_own_and_keep_the_session(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        logins = d.logins
        with pytest.raises(DeviceRejected) as e:
            await d.call("presentation_start", {"source": 1})  # not in a call
        assert e.value.code == str(api.EXAMPLE_ERROR_CODE)
        assert "WEB_StartSendAuxStreamAPI refused" in e.value.message
        assert "100666995" in e.value.message
        with pytest.raises(DeviceRejected):
            await d.call("disconnect", {"call_id": 9})
        assert _sent(sim, api.HANGUP_CALL) == [{"ucSiteHandle": 9}]
        await d.call("dial", {"number": "sip:a@b"})
        with pytest.raises(DeviceRejected):
            await d.call("dial", {"number": "sip:c@d"})  # one site at a time
        assert d.logins == logins  # a refusal is not a lost session
        assert [why for _, why in sim.model.refusals] == [
            "no call to send the aux stream into",
            "no site with handle 9",
            "already in a call",
        ]
    finally:
        await d.stop()


async def test_hostile_numbers_never_reach_the_endpoint(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    try:
        for hostile in ('sip:a"@b', "a\r\nWEB_RebootAPI", "a b", "a\x00"):
            with pytest.raises(InvalidParams):
                await d.call("dial", {"number": hostile})
        assert _sent(sim, api.CALL_NUMBER) == []
        for bad in ({"call_id": -1}, {"call_id": "1; WEB_RebootAPI"}, {"handle": 1}):
            with pytest.raises(InvalidParams):
                await d.call("disconnect", bad)
        assert _sent(sim, api.HANGUP_CALL) == [] and _sent(sim, api.CANCEL_CALL) == []
        assert d.state["calls"] == []
    finally:
        await d.stop()


async def test_wrong_password_is_an_auth_failure_without_hammering(sim: HuaweiSimulator) -> None:
    d = _driver(sim, password="wrong")
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.AUTH_FAILURE, 10)
        assert "refused user 'api'" in d.status_detail and "wrong" not in d.status_detail
        with pytest.raises(DeviceOffline):
            await d.call("mute", {})
        # Retries wait at the backoff cap: no lock-out of the account.
        assert sim.model.locked_until == 0.0
    finally:
        await d.stop()


async def test_a_full_session_table_is_a_connection_failure() -> None:
    sim = await _sim(max_sessions=0)
    d = _driver(sim)
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.CONNECTION_FAILURE, 10)
        assert "session table may be full" in d.status_detail
    finally:
        await d.stop()
        await sim.stop()


async def test_older_firmware_without_status_reads_still_works(sim: HuaweiSimulator) -> None:
    real_act = sim.model.act

    def act(action: str, body: dict[str, Any], login: Any) -> Any:
        if action == api.IS_SENDING_AUX:
            return real_act("WEB_NoSuchAPI", body, login)
        return real_act(action, body, login)

    sim.model.act = act  # type: ignore[method-assign]
    d = _driver(sim)
    await _up(d)
    try:
        await d.call("mute", {})
        await eventually(lambda: d.state["microphones_muted"] is True)
        assert d.status is DriverStatus.OK
        asked = len(_sent(sim, "WEB_NoSuchAPI"))
        await d.call("calls", {})
        assert len(_sent(sim, "WEB_NoSuchAPI")) == asked == 1  # not asked again
    finally:
        await d.stop()


async def test_firmware_with_object_data_and_no_session_change() -> None:
    sim = await _sim(data_objects=True, change_session_id=False)
    d = _driver(sim)
    await _up(d)
    try:
        assert [why for _, why in sim.model.refusals] == ["no action WEB_ChangeSessionIDAPI"]
        h = (await d.call("dial", {"number": "sip:box@x"}))["call_id"]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        await d.call("mute", {})
        await eventually(lambda: d.state["microphones_muted"] is True)
        await d.call("disconnect", {})
        await eventually(lambda: _ended(d, h))
        assert d.state["last_disconnect"]["reason"] == "local_hangup"
    finally:
        await d.stop()
        await sim.stop()


async def test_a_garbled_keep_alive_drops_the_link_until_it_is_sane(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    real_act = sim.model.act

    def garbled(action: str, body: dict[str, Any], login: Any) -> Any:
        return [1, 2] if action == api.MAILBOX else real_act(action, body, login)

    try:
        sim.model.act = garbled  # type: ignore[method-assign]
        await eventually(lambda: d.status is DriverStatus.CONNECTION_FAILURE, 10)
        assert "WEB_GetMailboxDataAPI" in d.status_detail and "not an object" in d.status_detail
        with pytest.raises(DeviceOffline):
            await d.call("mute", {})
        sim.model.act = real_act  # type: ignore[method-assign]
        await eventually(lambda: d.status is DriverStatus.OK, 15)
        await d.call("mute", {})
        assert sim.model.mic_on is False
    finally:
        await d.stop()


async def test_a_network_blip_keeps_the_session(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    port, model = sim.port, sim.model
    try:
        logins = d.logins
        await sim.stop()  # the HTTP server goes; the endpoint (model) and its sessions stay
        await eventually(lambda: d.status is DriverStatus.CONNECTION_FAILURE, 10)
        back = HuaweiSimulator(model)
        await back.start(port=port or 0, plain=True)
        try:
            await eventually(lambda: d.status is DriverStatus.OK, 15)
            await d.call("mute", {})
            assert model.mic_on is False
            assert d.logins == logins and len(model.sessions) == 1
        finally:
            await back.stop()
    finally:
        await d.stop()


async def test_endpoint_offline_then_back(sim: HuaweiSimulator) -> None:
    d = _driver(sim)
    await _up(d)
    port = sim.port
    try:
        await sim.stop()
        await eventually(lambda: d.status is DriverStatus.CONNECTION_FAILURE, 10)
        with pytest.raises(DeviceOffline):
            await d.call("mute", {})
        back = HuaweiSimulator(HuaweiModel(password=PASSWORD, farend=_fast()))
        await back.start(port=port or 0, plain=True)
        try:
            await eventually(lambda: d.status is DriverStatus.OK, 15)
            await d.call("mute", {})
            assert back.model.mic_on is False
        finally:
            await back.stop()
    finally:
        await d.stop()


# --- the simulator speaks the document's examples byte for byte ------------------------------


async def test_simulator_answers_match_the_documented_examples(sim: HuaweiSimulator) -> None:
    base = f"http://127.0.0.1:{sim.port}/action.cgi?ActionID="
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.post(base + api.REQUEST_SESSION) as r:
            body = await r.read()
            cookie = r.headers["Set-Cookie"]
            assert r.headers["Content-Type"] == "text/plain"
            assert r.headers["Response-Result"] == "1"
            assert r.headers["X-Frame-Options"] == "sameorigin"
        # IdeaHub 0014 with our terminal type in place of "Terminal Type".
        assert body == (
            b'{"success":1,"data":"{\\"acSessionId\\":\\"\\",\\"szTermType\\":\\"Huawei TE20\\"}"}'
        )
        assert re.fullmatch(r"SessionID=[0-9a-f]{64}; Path=/; Secure; HttpOnly", cookie)
        sid = cookie.split(";")[0]
        headers = {"Cookie": sid, "Content-Type": "application/json; charset=UTF-8"}
        async with http.post(base + api.OPEN_MIC, data=b"{}", headers=headers) as r:
            assert await r.read() == (
                b'{"success":0,"error":{"id":100666995,"code":33558532,"params":[]}}'
            )
            assert r.headers["Response-Result"] == "0"
        login = b'{"user":"api","password":"Change_Me"}'
        async with http.post(base + api.REQUEST_CERTIFICATE, data=login, headers=headers) as r:
            token = api.decode_reply(r.status, await r.read())["acCSRFToken"]
        async with http.post(base + api.CHANGE_SESSION, headers={"Cookie": sid}) as r:
            fresh = r.headers["Set-Cookie"].split(";")[0]
            assert fresh != sid and (await r.read()).startswith(b'{"success":1,"data":"{')
        headers["Cookie"] = fresh
        tok = f'{{"acCSRFToken":"{token}"}}'.encode()
        async with http.post(base + api.OPEN_MIC, data=tok, headers=headers) as r:
            assert await r.read() == b'{"success":1,"data":""}'
        async with http.post(base + api.CALL_TYPES, data=tok, headers=headers) as r:
            assert await r.read() == b'{"success":1,"data":"{\\"value\\":[3,4,8,10]}"}'
        # The old id is gone after the change.
        async with http.post(base + api.OPEN_MIC, data=tok, headers={"Cookie": sid}) as r:
            with pytest.raises(api.ApiFailure):
                api.decode_reply(r.status, await r.read())
        for hostile in (b"{not json", b"[1]", b"\xff"):
            async with http.post(base + api.OPEN_MIC, data=hostile, headers=headers) as r:
                with pytest.raises(api.ApiFailure):
                    api.decode_reply(r.status, await r.read())
        async with http.post(base + "WEB_Reboot", data=tok, headers=headers) as r:
            with pytest.raises(api.ApiFailure):
                api.decode_reply(r.status, await r.read())
    assert sim.model.mic_on is True


async def test_simulator_mailbox_follows_a_call(sim: HuaweiSimulator) -> None:
    sim.model.farend = FarEnd(setup_s=0, ring_s=0)
    base = f"http://127.0.0.1:{sim.port}/action.cgi?ActionID="
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def post(action: str, params: dict[str, Any] | None = None) -> Any:
            req = s.call(action, params) if s.logged_in else None
            assert req is not None
            async with http.post(base + action, data=req.body, headers=req.headers) as r:
                return api.decode_reply(r.status, await r.read())

        s = api.Session()
        async with http.post(base + api.REQUEST_SESSION) as r:
            s.on_session(r.status, r.headers.items(), await r.read())
        req = s.login("api", PASSWORD)
        async with http.post(base + req.action, data=req.body, headers=req.headers) as r:
            s.on_login(r.status, await r.read())
        assert await post(api.CALL_NUMBER, {"szNumber": "sip:a@b"}) == ""
        first = api.parse_mailbox(await post(api.MAILBOX))
        assert first.messages[0].name == api.MSG_START_CALL
        handle = first.messages[0].handle
        assert handle is not None
        await eventually(lambda: sim.model.sites[handle].state == "CONNECTED", 5)
        box = api.parse_mailbox(await post(api.MAILBOX))
        assert box.state is not None and box.state.phase == "up"
        rsp = [m for m in first.messages + box.messages if m.name == api.MSG_CALL_RSP]
        assert rsp and (rsp[0].handle, rsp[0].result, rsp[0].incoming) == (handle, 0, False)
        # Read once: the next read is empty.
        assert api.parse_mailbox(await post(api.MAILBOX)).messages == ()
