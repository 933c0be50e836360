"""Terminals as wall sources (mobile/<id>) through a running daemon's API and CLI.

No WebRTC here (netns_sources.py publishes for real): the catalogue, its validation,
terminals added and removed behind the daemon's back, the offline slate on the real
compositor, `wallctl sources`, and the hostile inputs around them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.services import service_of

from wallctl.accounts import Accounts, Role
from wallctl.api.server import ApiServer
from wallctl.bus import BusEvent
from wallctl.cli import build_parser
from wallctl.client import ApiError, Client, connect
from wallctl.config import ConfigError, parse_config
from wallctl.daemon import Daemon
from wallctl.errors import InvalidField
from wallctl.render.canvas import rgb_to_yuv
from wallctl.render.component import RenderComponent
from wallctl.render.frames import SourcePhase
from wallctl.render.text import SLATE_BG
from wallctl.store import Actor
from wallctl.terminals.identities import Terminals
from wallctl.terminals.sources import REFRESH_S, feed_base, terminal_of

PASSWORD = "correct horse battery"
WALL = {
    "id": "main",
    "min_diagonal_cm": 10,
    "tiles": {
        "rows": 1,
        "cols": 2,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "width_px": 640,
        "height_px": 360,
    },
}


def raw_config(tmp: Path, **extra: Any) -> dict[str, Any]:
    return {
        "daemon": {"state_dir": str(tmp / "state"), "durability": "normal"},
        "http": {"host": "127.0.0.1", "port": 0},
        "api": {"port": 0},
        "wall": WALL,
        "sources": [
            {"id": "bars", "name": "彩条", "kind": "test_pattern"},
            # Config wins over the automatic mobile/p2: its name and group.
            {"id": "mobile/p2", "name": "二号机", "kind": "mobile", "group": "南浔区/公安"},
        ],
        "render": {"fps": 5, "sources": {"warm_s": 0}},
        **extra,
    }


@dataclass
class Running:
    daemon: Daemon
    terminals: Terminals
    api_url: str
    client: Client
    events: list[BusEvent] = field(default_factory=list)

    @property
    def render(self) -> RenderComponent:
        return service_of(self.daemon, "render", RenderComponent)

    async def ids(self) -> list[str]:
        return [s["id"] for s in (await self.client.call("source.list"))["sources"]]


async def wait_until(cond: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await cond() if asyncio.iscoroutinefunction(cond) else cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def start(tmp: Path, **extra: Any) -> tuple[Running, asyncio.Task[int]]:
    d = Daemon(parse_config(raw_config(tmp, **extra)))
    task = asyncio.create_task(d.run())
    for _ in range(300):
        await asyncio.sleep(0.05)
        if d.runtime is not None and any(c.name == "http" for c in d._started):
            break
    else:
        raise AssertionError("daemon did not start")
    rt = d.runtime
    assert rt is not None
    await Accounts(rt.store).add("op1", PASSWORD, Role.OPERATOR)
    api = next(c for c in rt.components if isinstance(c, ApiServer))
    client = await connect(api.url, account="op1", password=PASSWORD)
    running = Running(d, Terminals(rt.store), api.url, client)
    rt.bus.subscribe(running.events.append)
    return running, task


@pytest.fixture
async def centre(tmp_path: Path) -> AsyncIterator[Running]:
    running, task = await start(tmp_path)
    try:
        yield running
    finally:
        await running.client.close()
        running.daemon.request_stop()
        await asyncio.wait_for(task, 30)


def slate_share(running: Running, x0: int, x1: int) -> float:
    """The part of the canvas between columns x0 and x1 painted in the slate's colour."""
    comp = running.render.compositors["main"]
    comp.wait_frame(comp.stats.frames)
    c = comp.canvas
    sy, su, sv = rgb_to_yuv(*SLATE_BG)
    near = (
        (np.abs(c.y[::2, x0:x1:2].astype(int) - sy) <= 2)
        & (np.abs(c.u[:, x0 // 2 : x1 // 2].astype(int) - su) <= 2)
        & (np.abs(c.v[:, x0 // 2 : x1 // 2].astype(int) - sv) <= 2)
    )
    return float(np.count_nonzero(near) / near.size)


async def test_every_terminal_is_a_source_without_configuration(centre: Running) -> None:
    # Added while the daemon runs (the CLI writes the table behind its back).
    centre.terminals.add("p1", "巡逻一组", Actor("test"))
    centre.terminals.add("p2", "", Actor("test"))

    async def listed() -> bool:
        return "mobile/p1" in await centre.ids()

    await wait_until(listed, REFRESH_S * 3, "mobile/p1 in source.list")
    sources = {s["id"]: s for s in (await centre.client.call("source.list"))["sources"]}
    assert list(sources) == ["bars", "mobile/p2", "mobile/p1"], "configured first"
    p1 = sources["mobile/p1"]
    assert p1["name"] == "巡逻一组" and p1["kind"] == "mobile" and p1["group"] == "移动终端"
    rt = centre.daemon.runtime
    assert rt is not None
    assert p1["whep_path"] == "/whep/mobile/p1"
    assert p1["whep_url"] == f"http://127.0.0.1:{rt.http.port}/whep/mobile/p1"
    assert p1["url"] is None, "the internal feed is not an address for clients"
    assert p1["publishing"] is False and sources["bars"]["publishing"] is None
    # The configured entry wins: its name and group, the same WHEP path.
    assert sources["mobile/p2"]["name"] == "二号机"
    assert sources["mobile/p2"]["group"] == "南浔区/公安"
    assert sources["mobile/p2"]["whep_url"].endswith("/whep/mobile/p2")
    assert sources["bars"]["whep_url"] is None and sources["bars"]["whep_path"] is None
    got = await centre.client.call("source.get", {"source": "mobile/p1"})
    assert got == p1
    terms = (await centre.client.call("terminal.list"))["terminals"]
    assert [t["whep_url"] for t in terms if t["id"] == "p1"] == [p1["whep_url"]]
    added = [e.data for e in centre.events if e.type == "source.added"]
    assert {"source": "mobile/p1", "name": "巡逻一组"} in added
    assert all(e.category == "source" for e in centre.events if e.type == "source.added")

    # Windows and layouts take it like any source; the hub decodes only while shown.
    opened = await centre.client.call(
        "window.open", {"x": 0, "y": 0, "w": 320, "h": 360, "source": "mobile/p1"}
    )
    win = opened["window"]["id"]
    await centre.client.call("window.set_source", {"window": win, "source": "mobile/p2"})
    await centre.client.call("layout.apply", {"name": "1x1", "sources": ["mobile/p1"]})
    state = (await centre.client.call("wall.get"))["state"]
    assert [w["source"] for w in state["windows"]] == ["mobile/p1"]
    with pytest.raises(ApiError) as e:
        await centre.client.call(
            "window.open", {"x": 0, "y": 0, "w": 64, "h": 64, "source": "mobile/nobody"}
        )
    assert e.value.code == "not_found" and e.value.field == "params.source"

    # Nobody publishes: the window's slate says so (the real compositor's canvas).
    hub = centre.render.hub
    await wait_until(lambda: hub.view("mobile/p1").phase is SourcePhase.FAILED, 5, "slate")
    view = hub.view("mobile/p1")
    assert view.error == "终端未推流 terminal not publishing"
    assert await asyncio.to_thread(slate_share, centre, 0, 640) > 0.6
    stats = await centre.client.call("source.stats")
    (row,) = [r for r in stats["sources"] if r["source"] == "mobile/p1"]
    assert row["phase"] == "failed" and row["holders"] == ["wall:main"]
    # No decoder polls an offline terminal: nothing asks for its feed.
    assert centre.render.hub.decoder_threads() == 0

    # Removed while shown (a stolen phone): gone from the catalogue, the window stays
    # and shows a slate; the compositor keeps running.
    centre.terminals.remove("p1")

    async def gone() -> bool:
        return "mobile/p1" not in await centre.ids()

    await wait_until(gone, REFRESH_S * 3, "mobile/p1 gone")
    assert {"source": "mobile/p1"} in [e.data for e in centre.events if e.type == "source.removed"]
    state = (await centre.client.call("wall.get"))["state"]
    assert [w["source"] for w in state["windows"]] == ["mobile/p1"]
    assert hub.view("mobile/p1").phase is SourcePhase.FAILED
    frames = centre.render.compositors["main"].stats.frames
    assert await asyncio.to_thread(slate_share, centre, 0, 640) > 0.6
    assert centre.render.compositors["main"].stats.frames > frames
    assert centre.render.health().status.value in ("ok", "degraded")
    with pytest.raises(ApiError) as e:
        await centre.client.call("source.get", {"source": "mobile/p1"})
    assert e.value.code == "not_found"
    # Added again: back in the catalogue under the same id.
    centre.terminals.add("p1", "巡逻一组", Actor("test"))
    await wait_until(listed, REFRESH_S * 3, "mobile/p1 back")


async def test_sources_survive_a_reload(centre: Running, tmp_path: Path) -> None:
    centre.terminals.add("p3", "三号", Actor("test"))

    async def listed() -> bool:
        return "mobile/p3" in await centre.ids()

    await wait_until(listed, REFRESH_S * 3, "mobile/p3")
    await centre.client.call("layout.apply", {"name": "1x1", "sources": ["mobile/p3"]})
    slot = centre.render.hub._slots["mobile/p3"]
    rt = centre.daemon.runtime
    assert rt is not None
    # SIGHUP with a config that drops the bars pattern: terminals stay, nothing restarts.
    path = tmp_path / "wallctl.toml"
    path.write_text(
        f"""
[daemon]
state_dir = "{tmp_path / "state"}"
durability = "normal"
[http]
host = "127.0.0.1"
port = 0
[api]
port = 0
[wall]
id = "main"
min_diagonal_cm = 10
[wall.tiles]
rows = 1
cols = 2
width_mm = 1209.6
height_mm = 680.4
width_px = 640
height_px = 360
[render]
fps = 5
[render.sources]
warm_s = 0
""",
        encoding="utf-8",
    )
    from wallctl.config import load_config

    centre.daemon.loaded = load_config(path)
    await centre.daemon.reload()
    ids = await centre.ids()
    assert "mobile/p3" in ids and "bars" not in ids and "mobile/p2" not in ids
    assert centre.render.hub._slots["mobile/p3"] is slot, "the shown terminal kept its decoder slot"


async def test_sources_cli(
    centre: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvalidField):
        centre.terminals.add("p4", "bad\x1bname", Actor("test"))
    centre.terminals.add("p4", "执法仪四", Actor("test"))

    async def listed() -> bool:
        return "mobile/p4" in await centre.ids()

    await wait_until(listed, REFRESH_S * 3, "mobile/p4")
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    conn = ["--url", centre.api_url, "--account", "op1", "--password-file", str(pw)]
    parser = build_parser()

    async def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return int(await asyncio.to_thread(args.func, args))

    assert await run("sources", *conn) == 0
    out = capsys.readouterr().out.splitlines()
    (row,) = [ln for ln in out if ln.startswith("mobile/p4 ")]
    assert "mobile" in row and "执法仪四" in row and row.endswith("/whep/mobile/p4")
    assert row.split()[2] == "offline"
    (bars,) = [ln for ln in out if ln.startswith("bars ")]
    assert bars.rstrip().endswith(" -"), "no WHEP for a test pattern"
    assert await run("sources", "list", "--json", *conn) == 0
    import json

    listed_json = json.loads(capsys.readouterr().out)
    assert {"mobile/p4", "mobile/p2", "bars"} <= {s["id"] for s in listed_json}
    assert await run("sources", *conn, "show", "mobile/p4") == 0
    shown = capsys.readouterr().out
    assert "name: 执法仪四" in shown and "whep_path: /whep/mobile/p4" in shown
    assert "url: -" in shown and "publishing: false" in shown
    assert await run("sources", "show", "mobile/p4", "--json", *conn) == 0
    assert json.loads(capsys.readouterr().out)["whep_url"].endswith("/whep/mobile/p4")
    assert await run("sources", "show", "mobile/nobody", *conn) == 3
    assert "not_found" in capsys.readouterr().err
    assert await run("sources", "show", "x" * 65, *conn) == 2
    assert "invalid_field" in capsys.readouterr().err


async def test_hostile_source_ids_change_nothing(centre: Running) -> None:
    before = await centre.client.call("source.list")
    for bad, code in [
        ("mobile/../p2", "not_found"),
        ("mobile/p2\n", "not_found"),
        ("mobile/" + "a" * 58, "invalid_field"),
        ("", "invalid_field"),
    ]:
        with pytest.raises(ApiError) as e:
            await centre.client.call("source.get", {"source": bad})
        assert e.value.code == code, bad
        with pytest.raises(ApiError) as e:
            await centre.client.call(
                "window.open", {"x": 0, "y": 0, "w": 64, "h": 64, "source": bad}
            )
        assert e.value.code == code, bad
    assert await centre.client.call("source.list") == before
    assert (await centre.client.call("wall.get"))["state"]["windows"] == []
    # A terminal whose source id would not fit is refused at enrolment.
    with pytest.raises(InvalidField) as ei:
        centre.terminals.add("t" * 58, "", Actor("test"))
    assert "at most 57" in ei.value.message
    centre.terminals.add("t" * 57, "", Actor("test"))

    async def listed() -> bool:
        return "mobile/" + "t" * 57 in await centre.ids()

    await wait_until(listed, REFRESH_S * 3, "the longest terminal id")


def test_config_ids_of_terminal_sources(tmp_path: Path) -> None:
    ok = parse_config(raw_config(tmp_path)).config
    assert terminal_of(ok.sources[1]) == "p2"
    for sources, path, words in [
        (
            [{"id": "mobile/p7", "name": "x", "kind": "rtsp", "url": "rtsp://h/s"}],
            "sources[0].kind",
            "mobile",
        ),
        ([{"id": "mobile/a b", "name": "x", "kind": "mobile"}], "sources[0].id", "letters"),
        ([{"id": "mobile/" + "a" * 58, "name": "x", "kind": "mobile"}], "sources[0].id", "64"),
        ([{"id": "mobile/", "name": "x", "kind": "mobile"}], "sources[0].id", "letters"),
    ]:
        raw = raw_config(tmp_path)
        raw["sources"] = sources
        with pytest.raises(ConfigError) as e:
            parse_config(raw)
        problems = {p.path: p.message for p in e.value.problems}
        assert path in problems and words in problems[path], problems
    # The older style: a source of its own id, showing the terminal its URL names.
    raw = raw_config(tmp_path)
    raw["sources"] = [
        {
            "id": "cam7",
            "name": "x",
            "kind": "mobile",
            "url": "http://127.0.0.1:8080/terminals/p7/feed.h264",
        },
        {"id": "p8", "name": "y", "kind": "mobile"},
    ]
    old = parse_config(raw).config
    assert [terminal_of(s) for s in old.sources] == ["p7", "p8"]


def test_feed_base_reaches_the_listener() -> None:
    assert feed_base("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert feed_base("127.0.0.1", 81) == "http://127.0.0.1:81"
    assert feed_base("::", 81) == "http://[::1]:81"
    assert feed_base("192.0.2.10", 81) == "http://192.0.2.10:81"
    assert feed_base("fd00::5", 81) == "http://[fd00::5]:81"
    assert feed_base("0.0.0.0", None) is None


async def test_who_the_centre_hears_follows_the_wall(tmp_path: Path) -> None:
    # An audio device that is never opened here: nobody publishes, so nothing plays; the
    # policy is what is tested (netns_sources.py plays for real).
    running, task = await start(tmp_path, terminals={"audio": {"device": "null"}})
    c = running.client
    try:
        running.terminals.add("p1", "", Actor("test"))
        running.terminals.add("p2", "", Actor("test"))

        async def listed() -> bool:
            return {"mobile/p1", "mobile/p2"} <= set(await running.ids())

        await wait_until(listed, REFRESH_S * 3, "both terminals")
        w1 = (
            await c.call("window.open", {"x": 0, "y": 0, "w": 640, "h": 360, "source": "mobile/p1"})
        )["window"]["id"]
        w2 = (
            await c.call(
                "window.open", {"x": 640, "y": 0, "w": 640, "h": 360, "source": "mobile/p2"}
            )
        )["window"]["id"]

        async def heard() -> list[tuple[str, str]]:
            info = await c.call("terminal.audio")
            return [(h["terminal"], h["why"]) for h in info["heard"]]

        assert await heard() == []
        info = await c.call("terminal.audio")
        assert info["device"] == "null" and info["follow"] == ["highlighted", "fullscreen"]
        await c.call("render.highlight", {"window": w2})

        async def pointed() -> bool:
            return await heard() == [("p2", "highlighted")]

        await wait_until(pointed, 3, "the highlighted terminal heard")
        await c.call("window.fullscreen", {"window": w1})

        async def both() -> bool:
            return await heard() == [("p2", "highlighted"), ("p1", "fullscreen")]

        await wait_until(both, 3, "the full-screen terminal heard too")
        info = await c.call("terminal.mute", {"terminal": "P2"})
        assert info["heard"] == [{"terminal": "p1", "why": "fullscreen"}] and info["muted"] == [
            "p2"
        ]
        await c.call("window.fullscreen", {"window": w1, "on": False})
        await c.call("render.highlight", {"window": w2, "on": False})

        async def nobody() -> bool:
            return await heard() == []

        await wait_until(nobody, 3, "nobody heard")
        types = [e.data["heard"] for e in running.events if e.type == "terminal.audio"]
        assert types[:3] == [
            [{"terminal": "p2", "why": "highlighted"}],
            [{"terminal": "p2", "why": "highlighted"}, {"terminal": "p1", "why": "fullscreen"}],
            [{"terminal": "p1", "why": "fullscreen"}],
        ]
        info = await c.call("terminal.listen", {"terminal": "p2"})
        assert info["heard"] == [{"terminal": "p2", "why": "listen"}] and info["muted"] == []
        for method, params, code in [
            ("terminal.listen", {"terminal": "nobody"}, "not_found"),
            ("terminal.mute", {"terminal": "p1/../x"}, "invalid_field"),
            ("terminal.mute", {"terminal": "p" * 65}, "invalid_field"),
            ("terminal.listen", {"terminal": "p1", "extra": 1}, "invalid_field"),
        ]:
            with pytest.raises(ApiError) as e:
                await c.call(method, params)
            assert e.value.code == code, (method, params)
        assert await heard() == [("p2", "listen")]
    finally:
        await c.close()
        running.daemon.request_stop()
        await asyncio.wait_for(task, 30)


async def test_without_an_audio_device_nobody_is_heard(centre: Running) -> None:
    centre.terminals.add("p1", "", Actor("test"))
    info = await centre.client.call("terminal.audio")
    assert info["device"] is None and info["heard"] == [] and info["playing"] is None
    with pytest.raises(ApiError) as e:
        await centre.client.call("terminal.listen", {"terminal": "p1"})
    assert e.value.code == "unavailable" and "[terminals.audio] device" in e.value.message


def test_the_walls_catalogue_takes_contributions(tmp_path: Path) -> None:
    from wallctl.config import SourceConfig
    from wallctl.daemon import build_walls, load_layouts
    from wallctl.store import Store
    from wallctl.walls import WallService

    cfg = parse_config(raw_config(tmp_path)).config
    store = Store(tmp_path / "db.sqlite", "normal")
    try:
        walls = WallService(store, build_walls(cfg), cfg.sources, load_layouts(cfg))
        calls: list[list[str]] = []
        walls.on_sources_changed(lambda: calls.append(list(walls.sources)))

        def broken() -> None:
            raise RuntimeError("a listener's bug")

        unsubscribe = walls.on_sources_changed(broken)
        p1 = SourceConfig(id="mobile/p1", name="一", kind="mobile")
        p2 = SourceConfig(id="mobile/p2", name="auto", kind="mobile")
        assert walls.contribute_sources("terminals", [p1, p2])
        assert calls == [["bars", "mobile/p2", "mobile/p1"]], "configured first, then contributed"
        assert walls.sources["mobile/p2"].name == "二号机", "the configured entry wins"
        assert "mobile/p1" in walls.context("main").sources
        assert not walls.contribute_sources("terminals", [p1, p2]), "no change, no call"
        unsubscribe()
        # A reload keeps what services contributed.
        walls.configure([s for s in cfg.sources if s.id == "bars"], walls.templates)
        assert list(walls.sources) == ["bars", "mobile/p1", "mobile/p2"]
        assert walls.sources["mobile/p2"].name == "auto", "no longer configured: the terminal's"
        assert walls.contribute_sources("terminals", [])
        assert list(walls.sources) == ["bars"] and "mobile/p1" not in walls.context("main").sources
        assert len(calls) == 3
    finally:
        store.close()
