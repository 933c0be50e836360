"""Conferencing through the control API and the CLI of a running daemon."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path

from wallctl.client import ApiError, open_client

from .conftest import Rig


async def test_call_over_the_api_with_progress_events(rig: Rig) -> None:
    async with open_client(
        rig.api_url,
        account="admin",
        password=rig.admin_password,
        validate=True,
        subscriptions=["conference"],
    ) as c:
        result = await c.call("conference.call", {"centre": "huzhou", "wait": True})
        assert result["ok"] is True and result["window"]
        directory = await c.call("conference.centres")
        assert [x["id"] for x in directory["centres"]][:2] == ["huzhou", "nanxun"]
        assert directory["centres"][1]["dial"][0] == {
            "kind": "sip",
            "number": "sip:nanxun@10.33.1.10",
        }
        status = await c.call("conference.status")
        assert status["links"][0]["state"] == "connected"
        try:
            await c.call("conference.call", {"number": 'sip:x"@y\r\nxCommand', "codec": "lower"})
        except ApiError as e:
            assert e.code == "invalid_field" and e.field == "params.number"
        else:
            raise AssertionError("a hostile number was accepted")
        try:
            await c.call("conference.call", {"centre": "huzhou", "number": "sip:a@b"})
        except ApiError as e:
            assert e.code == "invalid_field"
        else:
            raise AssertionError("centre and number together were accepted")
        ended = await c.call("conference.hangup", {"link": "upper"})
        assert ended["reason"] == "local_hangup"
        rt = rig.daemon.runtime
        assert rt is not None
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"{rt.http.url}/metrics").read().decode()
        )
        assert 'wallctl_conference_calls_total{link="upper",outcome="connected"} 1.0' in metrics
        assert 'wallctl_conference_link_busy{link="upper"} 0.0' in metrics
        steps: list[str] = []
        async with asyncio.timeout(5):
            while "window_opened" not in steps:
                event = await c.next_event()
                if event["type"] == "conference.progress":
                    steps.append(event["data"]["step"])
        assert steps[:4] == ["codec_chosen", "dialling", "ringing", "connected"]


async def test_cli_call_status_hangup(rig: Rig, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(rig.admin_password)
    base = ["--url", rig.api_url, "--account", "admin", "--password-file", str(pw)]

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wallctl",
            "conference",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, _ = await cli("call", "nanxun", *base)
    assert code == 0 and "南浔区指挥中心: connected on link lower" in out
    code, out, _ = await cli("status", *base)
    assert code == 0 and "lower" in out and "connected with 南浔区指挥中心" in out
    code, out, _ = await cli("status", "--json", *base)
    assert json.loads(out)["links"][1]["centre"] == "nanxun"
    code, out, _ = await cli("call", "lianshi", "--codec", "upper", *base)
    assert code == 1 and "对方忙" in out
    code, out, _ = await cli("hangup", "--centre", "nanxun", *base)
    assert code == 0 and "ended" in out
    code, _, err = await cli("call", "nowhere", *base)
    assert code == 3 and "no centre" in err
