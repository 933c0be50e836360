"""The conference layer over the Huawei link: every step through the documented protocol
(site handles, MSG_CALL_RSP causes, the keep-alive state), with the daemon, a matrix and
both codec simulators on real ports (the rig of tests/conference)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conference.conftest import Rig, eventually, start_rig, stop_rig

from drivers.huawei_te import api
from wallctl.errors import DeviceError


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(tmp_path)
    try:
        yield r
    finally:
        await stop_rig(r)


def _sent(rig: Rig, action: str) -> list[dict[str, object]]:
    return [body for name, body in rig.huawei.model.actions if name == action]


async def test_a_busy_township_fails_with_the_endpoints_cause(rig: Rig) -> None:
    windows = len(rig.wall().windows)
    result = await rig.conf.call(centre_id="lianshi", codec="lower", wait=True)
    assert result["ok"] is False and result["reason"] == "busy"
    assert _sent(rig, api.CALL_NUMBER) == [{"szNumber": "sip:busy-lianshi@10.33.2.1"}]
    assert len(rig.wall().windows) == windows
    ended = rig.conference_events("conference.ended")[-1]
    assert ended["reason"] == "busy" and ended["connected"] is False


async def test_far_end_drop_on_the_huawei_link_leaves_a_slate(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="shuanglin", codec="lower", wait=True)
    assert result["ok"] is True and result["link"] == "lower"
    # The call on the wall is the endpoint's own site.
    handle = result["call_id"]
    assert any(
        name == api.MSG_START_CALL and event["siteNum"] == handle
        for name, event in rig.huawei.model.events
    )
    await eventually(lambda: rig.conf.links["lower"].state == "idle", 5)
    ended = rig.conference_events("conference.ended")[-1]
    # No message says so: the keep-alive's state going idle does.
    assert ended["reason"] == "remote_hangup" and ended["connected"] is True


async def test_hangup_share_and_mute_use_the_documented_requests(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="nanxun", wait=True)
    assert result["ok"] is True and result["link"] == "lower"
    handle = result["call_id"]
    assert await rig.conf.mute("lower", True) == {"link": "lower", "muted": True}
    assert rig.huawei.model.mic_on is False and _sent(rig, api.CLOSE_MIC) == [{}]
    await rig.conf.share("pc1", "lower")
    assert rig.huawei.model.aux_sending is True and _sent(rig, api.START_AUX) == [{}]
    # The endpoint forgets the session mid-call: the hang-up logs in again and goes through.
    rig.huawei.model.expire_sessions()
    ended = await rig.conf.hangup(centre_id="nanxun")
    assert ended["reason"] == "local_hangup"
    assert _sent(rig, api.HANGUP_CALL) == [{"ucSiteHandle": handle}]
    assert rig.huawei.model.sites == {}


async def test_the_endpoint_refusing_is_a_device_error(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="nanxun", wait=True)
    assert result["ok"] is True
    await rig.conf.hangup(centre_id="nanxun")
    # No call up any more: the endpoint refuses the aux stream, the API says who refused.
    with pytest.raises(DeviceError) as e:
        await rig.devices.call("codec-b", "presentation_start", {"source": 1})
    assert "codec-b refused: 33558532" in e.value.message
    assert "WEB_StartSendAuxStreamAPI" in e.value.message
