"""Calls between centres, from the directory to the far end on the wall, in a real
daemon: two codecs (Cisco WebSocket, Huawei HTTPS), a simulated matrix, the wall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wallctl.errors import Conflict, DeviceError, InvalidField, NotFound

from .conftest import Rig, eventually, start_rig, stop_rig


def _steps(rig: Rig, link: str) -> list[str]:
    return [e["step"] for e in rig.conference_events("conference.progress") if e["link"] == link]


def _window(rig: Rig, window: str | None) -> Any:
    assert window is not None
    return rig.wall().window(window)


async def test_call_a_centre_onto_the_wall(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="huzhou", wait=True)
    assert result["ok"] is True, result
    assert result["link"] == "upper" and result["centre_name"] == "湖州市指挥中心"
    assert _steps(rig, "upper") == [
        "codec_chosen",
        "dialling",
        "ringing",
        "connected",
        "routed",
        "window_opened",
    ]
    # The matrix tied the codec's output to the wall input ...
    matrix = rig.devices.devices["matrix"].driver
    assert matrix.state["tie.video.5"] == 3
    # ... and the far end opened where the layout says, named after the centre.
    win = _window(rig, result["window"])
    assert (win.x, win.y, win.w, win.h) == (1920, 0, 1920, 1080)
    assert win.source == "conf-upper" and win.label == "湖州市指挥中心"
    status = rig.conf.status()["links"]
    assert status[0]["state"] == "connected" and status[0]["centre"] == "huzhou"
    assert rig.cisco.model.commands[0] == ("Dial", {"Number": "sip:huzhou@10.33.0.1"})


async def test_two_codecs_two_links_and_then_both_busy(rig: Rig) -> None:
    up = await rig.conf.call(centre_id="huzhou", wait=True)
    down = await rig.conf.call(centre_id="nanxun", wait=True)
    assert (up["ok"], down["ok"]) == (True, True)
    assert (up["link"], down["link"]) == ("upper", "lower")
    assert rig.devices.devices["matrix"].driver.state["tie.video.6"] == 4
    assert any(
        a == ("WEB_CallNumberAPI", {"szNumber": "sip:nanxun@10.33.1.10"})
        for a in rig.huawei.model.actions
    )
    # Both codecs are in calls: a clear refusal naming who is on each.
    with pytest.raises(Conflict) as e:
        await rig.conf.call(centre_id="lianshi")
    assert "every conference codec is busy" in e.value.message
    assert "湖州市指挥中心" in e.value.message and "南浔区指挥中心" in e.value.message
    # The same centre twice is refused too.
    with pytest.raises(Conflict, match="already on link"):
        await rig.conf.call(centre_id="huzhou")


async def test_busy_centre_fails_with_the_reason_and_no_window(rig: Rig) -> None:
    windows = len(rig.wall().windows)
    result = await rig.conf.call(centre_id="lianshi", wait=True)
    assert result["ok"] is False and result["reason"] == "busy"
    assert result["reason_text"] == "对方忙"
    assert len(rig.wall().windows) == windows
    assert rig.conf.status()["links"][0]["state"] == "idle"
    ended = rig.conference_events("conference.ended")
    assert ended[-1]["reason"] == "busy" and ended[-1]["connected"] is False


async def test_no_answer_times_out_or_fails_with_reason(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="hefu", codec="upper", wait=True)
    assert result["ok"] is False and result["reason"] == "no_answer"


async def test_far_end_drops_mid_conference_leaves_a_slate(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="shuanglin", codec="upper", wait=True)
    assert result["ok"] is True
    window = result["window"]
    await eventually(lambda: rig.conf.links["upper"].state == "idle", 5)
    await eventually(lambda: _window(rig, window).source is None, 5)
    win = _window(rig, window)
    assert win.label.startswith("会议中断：双林镇指挥中心") and "对方挂断" in win.label
    ended = rig.conference_events("conference.ended")[-1]
    assert ended["reason"] == "remote_hangup" and ended["connected"] is True
    last = rig.conf.status()["links"][0]["last_ended"]
    assert last["reason"] == "remote_hangup"
    # The next call on that link replaces the slate.
    again = await rig.conf.call(centre_id="huzhou", wait=True)
    assert rig.wall().window(window) is None
    assert _window(rig, again["window"]).source == "conf-upper"


async def test_hangup_closes_the_window(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="nanxun", wait=True)
    assert result["ok"] is True and result["link"] == "lower"
    ended = await rig.conf.hangup(centre_id="nanxun")
    assert ended["reason"] == "local_hangup"
    await eventually(lambda: rig.wall().window(result["window"]) is None, 5)
    with pytest.raises(NotFound):
        await rig.conf.hangup(link_id="lower")


async def test_codec_offline_mid_call(rig: Rig) -> None:
    result = await rig.conf.call(centre_id="huzhou", wait=True)
    assert result["ok"] is True
    await rig.cisco.stop()
    await eventually(lambda: rig.conf.links["upper"].state == "idle", 10)
    assert rig.conference_events("conference.ended")[-1]["reason"] == "codec_offline"
    await eventually(lambda: _window(rig, result["window"]).source is None, 5)
    assert "终端离线" in _window(rig, result["window"]).label
    # With the upper codec down, a call for its centre goes on the other codec.
    other = await rig.conf.call(centre_id="huzhou", wait=True)
    assert other["link"] == "lower" and other["ok"] is True


async def test_mute_and_share(rig: Rig) -> None:
    await rig.conf.call(centre_id="huzhou", wait=True)
    assert await rig.conf.mute("upper", True) == {"link": "upper", "muted": True}
    await eventually(lambda: rig.cisco.model.status[("Audio", "Microphones", "Mute")] == "On")
    answer = await rig.conf.share("pc1", "upper")
    assert answer == {"link": "upper", "sharing": "pc1"}
    assert rig.devices.devices["matrix"].driver.state["tie.video.7"] == 9
    assert rig.cisco.model.status[("Conference", "Presentation", "Mode")] == "Sending"
    with pytest.raises(NotFound) as e:
        await rig.conf.share("conf-lower", "upper")
    assert e.value.field == "params.source"
    await rig.conf.share(None, "upper")
    assert rig.cisco.model.status[("Conference", "Presentation", "Mode")] == "Off"
    # Sharing needs a call.
    with pytest.raises(InvalidField):
        await rig.conf.share("pc1", "lower")


async def test_codec_refusal_is_a_device_error(rig: Rig) -> None:
    await rig.conf.call(centre_id="huzhou", wait=True)
    # This codec has one content input only: it refuses the configured source 2 itself.
    rig.cisco.model.presentation_sources = 1
    with pytest.raises(DeviceError) as e:
        await rig.conf.share("pc1", "upper")
    assert "codec-a refused" in e.value.message and "PresentationSource" in e.value.message
    assert rig.cisco.model.status[("Conference", "Presentation", "Mode")] == "Off"


@pytest.mark.parametrize(
    "hostile",
    ['sip:a"@b', "sip:a@b\r\nxCommand SystemUnit FactoryReset", "a b", "x\x1b[2J"],
)
async def test_hostile_numbers_are_refused_before_the_line(rig: Rig, hostile: str) -> None:
    with pytest.raises(InvalidField) as e:
        await rig.conf.call(number=hostile, codec="upper")
    assert e.value.field == "params.number"
    assert rig.cisco.model.commands == []
    assert rig.conf.links["upper"].state == "idle"
    result = rig.conference_events("conference.result")[-1]
    assert result["ok"] is False and result["reason"] == "failed"


async def test_unknown_centre_and_codec(rig: Rig) -> None:
    with pytest.raises(NotFound) as e:
        await rig.conf.call(centre_id="nowhere")
    assert e.value.field == "params.centre"
    with pytest.raises(NotFound) as e:
        await rig.conf.call(centre_id="huzhou", codec="middle")
    assert e.value.field == "params.codec"


async def test_software_wall_shows_the_capture_source_without_a_matrix(tmp_path: Path) -> None:
    conference = {
        "connect_timeout_s": 0.5,
        "codecs": [
            {
                "id": "upper",
                "name": "上级会议",
                "device": "codec-a",
                "source": "conf-upper",
                "window": {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0},
            }
        ],
        "centres": [
            {"id": "huzhou", "name": "湖州市指挥中心", "level": "city", "sip": "sip:huzhou@x"},
            {"id": "silent", "name": "无人镇", "level": "township", "sip": "sip:noanswer@x"},
        ],
    }
    rig = await start_rig(tmp_path, conference=conference)
    try:
        rig.cisco.model.farend.no_answer_s = 30
        result = await rig.conf.call(centre_id="huzhou", wait=True)
        assert result["ok"] is True
        assert "routed" not in _steps(rig, "upper")
        win = _window(rig, result["window"])
        assert (win.x, win.y, win.w, win.h, win.source) == (0, 0, 3840, 2160, "conf-upper")
        assert rig.devices.devices["matrix"].calls == 0  # nothing was routed
        await rig.conf.hangup()
        # A call nobody answers is hung up at the connect timeout, with that reason.
        result = await rig.conf.call(centre_id="silent", wait=True)
        assert result["ok"] is False and result["reason"] == "timeout"
        await eventually(lambda: rig.cisco.model.calls == {}, 5)
    finally:
        await stop_rig(rig)


async def test_a_refused_dial_string_falls_back_to_the_next(rig: Rig) -> None:
    rig.cisco.model.h323 = False  # this codec has no gatekeeper registration
    result = await rig.conf.call(centre_id="wuxing", codec="upper", wait=True)
    assert result["ok"] is True
    refused = [
        e for e in rig.conference_events("conference.progress") if e["step"] == "dial_refused"
    ]
    assert refused[0]["number"] == "h323:wuxing" and "H323 is not enabled" in refused[0]["error"]
    dials = [p["Number"] for c, p in rig.cisco.model.commands if c == "Dial"]
    assert dials == ["h323:wuxing", "sip:wuxing@10.33.1.20"]


async def test_every_dial_string_refused_is_a_device_error(rig: Rig) -> None:
    rig.cisco.model.h323 = False
    with pytest.raises(DeviceError, match="H323 is not enabled"):
        await rig.conf.call(number="h323:somewhere", codec="upper")
    assert rig.conf.links["upper"].state == "idle"


async def test_incoming_call_makes_the_codec_busy_for_new_calls(rig: Rig) -> None:
    handle = rig.huawei.model.incoming("sip:huzhou@10.33.0.1")
    lower = rig.devices.devices["codec-b"].driver
    await eventually(lambda: [c["status"] for c in lower.state["calls"]] == ["ringing"], 5)
    # The lower codec rings: a call for nanxun goes out on the upper one.
    result = await rig.conf.call(centre_id="nanxun", wait=True)
    assert result["link"] == "upper"
    await rig.devices.call("codec-b", "accept", {"call_id": handle})
    await eventually(lambda: rig.huawei.model.sites[handle].state == "CONNECTED", 5)


async def test_an_upper_centre_calls_in_and_is_answered_onto_the_wall(rig: Rig) -> None:
    rig.cisco.model.incoming("sip:huzhou@10.33.0.1")
    await eventually(lambda: bool(rig.conference_events("conference.incoming")), 5)
    incoming = rig.conference_events("conference.incoming")[-1]
    assert (incoming["link"], incoming["centre"], incoming["centre_name"]) == (
        "upper",
        "huzhou",
        "湖州市指挥中心",
    )
    result = await rig.conf.accept(None)
    assert result["ok"] is True and result["centre"] == "huzhou"
    assert _window(rig, result["window"]).label == "湖州市指挥中心"
    assert rig.devices.devices["matrix"].driver.state["tie.video.5"] == 3
    with pytest.raises(NotFound):
        await rig.conf.accept("upper")


async def test_auto_answer(tmp_path: Path) -> None:
    from .conftest import raw_config

    conference = raw_config(tmp_path, 1, 1)["conference"]
    conference["codecs"][1]["auto_answer"] = True
    rig = await start_rig(tmp_path, conference=conference)
    try:
        rig.huawei.model.incoming("+8657212345678")
        await eventually(lambda: (rig.conf.links["lower"].result or {}).get("ok") is True, 10)
        link = rig.conf.links["lower"]
        assert link.centre is not None and link.centre.id == "nanxun"
        assert _window(rig, link.window).source == "conf-lower"
    finally:
        await stop_rig(rig)


def test_broken_references_refuse_the_config(tmp_path: Path) -> None:
    # `wallctl check` and the daemon's start refuse them before anything is dialled.
    from wallctl.config import ConfigError, parse_config

    from .conftest import raw_config

    raw = raw_config(tmp_path, 1, 1)
    raw["conference"]["codecs"][1]["source"] = "no-such-source"
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert [str(p) for p in e.value.problems] == [
        "conference.codecs[1].source: no source 'no-such-source' in [[sources]]"
    ]
