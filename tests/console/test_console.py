"""The commander's console in a real browser (headless Chromium over DevTools), against a
real daemon: login, the mimic, dragging sources, layouts, presets, history, two
commanders at once, a dropped connection, a viewer, bad logins, both screen sizes."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_asyncio

from wallctl.client import ApiError

from .cdp import Browser, Page
from .conftest import PASSWORD, Daemon, Shots, login

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP_READY = "document.body.dataset.view === 'app' && document.body.dataset.ready === 'true'"


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    p = await browser.new_page()
    try:
        yield p
    finally:
        errors = []
        while not p.console.empty():
            errors.append(p.console.get_nowait())
        await p.close()
        # A script error in the page is a bug even when the test's checks passed.
        assert not errors, json.dumps(errors, ensure_ascii=False)[:2000]


async def logged_in(page: Page, daemon: Daemon, account: str = "op1") -> None:
    await login(page, daemon, account)
    await page.wait_for(APP_READY)


async def wall(daemon: Daemon) -> dict[str, Any]:
    c = await daemon.client()
    try:
        return dict((await c.call("wall.get"))["state"])
    finally:
        await c.close()


async def reset(daemon: Daemon, layout: str = "2x2") -> dict[str, Any]:
    c = await daemon.client()
    try:
        await c.call(
            "layout.apply", {"name": layout, "sources": ["bars", "gradient", "checkers", "clock"]}
        )
        return dict((await c.call("wall.get"))["state"])
    finally:
        await c.close()


async def mimic_revision(page: Page) -> int:
    return int(await page.eval("Number(document.querySelector('.mimic').dataset.revision)"))


def win_sel(wid: str) -> str:
    return f'.win[data-window="{wid}"]'


# --- HTTP: the files themselves --------------------------------------------------------


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def test_page_is_served_with_its_headers(daemon: Daemon) -> None:
    status, headers, body = await asyncio.to_thread(
        _get, daemon.url + "/", {"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and f"ws://127.0.0.1:{daemon.api_port}" in csp
    assert headers["X-Frame-Options"] == "DENY"
    # Without gzip: the plain page, and nothing it loads comes from elsewhere.
    status, headers, body = await asyncio.to_thread(_get, daemon.url + "/")
    text = body.decode()
    assert "Content-Encoding" not in headers and "<html" in text
    assert "http://" not in text and "https://" not in text
    # Revalidation answers 304 without a body.
    status, _, body = await asyncio.to_thread(
        _get, daemon.url + "/console/js/app.js", {"If-None-Match": headers["ETag"]}
    )
    assert status == 200  # another file's etag does not match
    _, h2, _ = await asyncio.to_thread(_get, daemon.url + "/console/js/app.js")
    status, _, body = await asyncio.to_thread(
        _get, daemon.url + "/console/js/app.js", {"If-None-Match": h2["ETag"]}
    )
    assert status == 304 and body == b""
    assert h2["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "host",
    ["evil.example; script-src *", "a b", "x" * 300, "[::1", "127.0.0.1:99999"],
)
async def test_a_hostile_host_header_cannot_loosen_the_policy(daemon: Daemon, host: str) -> None:
    status, headers, _ = await asyncio.to_thread(_get, daemon.url + "/", {"Host": host})
    if status == 200:
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "*" not in csp and " b:" not in csp
        assert csp.count("connect-src") == 1 and "evil" not in csp
    else:
        assert status == 400


@pytest.mark.parametrize(
    "path",
    [
        "/console/nothing.js",
        "/console/../wallctl.toml",
        "/console/%2e%2e/%2e%2e/wallctl.toml",
        "/console/js/../../web.py",
        "/console/" + "a" * 5000,
    ],
)
async def test_unknown_and_hostile_paths_are_not_found(daemon: Daemon, path: str) -> None:
    status, _, body = await asyncio.to_thread(_get, daemon.url + path)
    assert status in (404, 414), (path, status)
    assert b"[daemon]" not in body and b"import" not in body
    # The daemon still serves.
    status, _, _ = await asyncio.to_thread(_get, daemon.url + "/console/config.json")
    assert status == 200


async def test_config_tells_where_the_api_is(daemon: Daemon) -> None:
    _, headers, body = await asyncio.to_thread(_get, daemon.url + "/console/config.json")
    cfg = json.loads(body)
    assert cfg["api"] == {
        "scheme": "ws",
        "port": daemon.api_port,
        "path": "/api/v1",
        "categories": cfg["api"]["categories"],
    }
    assert {"wall", "layout", "device"} <= set(cfg["api"]["categories"])
    assert cfg["site"] == "测试指挥中心"
    assert cfg["preview"] is True  # the render pipeline serves /preview here
    # Params schemas of the optional PTZ methods, when the daemon has them.
    assert all(name.startswith("camera.") for name in cfg["methods"])
    for m in cfg["methods"].values():
        assert m["params"]["type"] == "object" and m["role"] in ("viewer", "operator", "admin")
    assert headers["Cache-Control"] == "no-store"


# --- login ----------------------------------------------------------------------------------


async def test_login_shows_the_wall(page: Page, daemon: Daemon, shots: Shots) -> None:
    await reset(daemon)
    await page.goto(daemon.url + "/")
    await page.wait_for("document.body.dataset.view === 'login'")
    await shots.take(page, "login")
    await page.type_into("#account", "op1")
    await page.type_into("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for(APP_READY)
    state = await wall(daemon)
    shown = await page.eval(
        "[...document.querySelectorAll('.win')].map(d => [d.dataset.window, d.dataset.source,"
        " d.querySelector('.name').textContent])"
    )
    names = {
        "bars": "测试信号：彩条",
        "gradient": "南浔区指挥中心",
        "checkers": "Checkerboard",
        "clock": "时钟",
    }
    assert sorted(shown) == sorted(
        [w["id"], w["source"], names[w["source"]]] for w in state["windows"]
    )
    assert await mimic_revision(page) == state["revision"]
    assert await page.eval("document.querySelector('#who').textContent") == "OP1 · 操作员"
    # Drawn to scale: the 2x2 wall of 16:9 panels is 16:9 on screen, tiles included.
    ratio = await page.eval(
        "(() => { const r = document.querySelector('.mimic').getBoundingClientRect();"
        " return r.width / r.height; })()"
    )
    assert abs(ratio - 3840 / 2160) < 0.005
    assert await page.eval("document.querySelectorAll('.tile').length") == 4
    await shots.take(page, "wall")


@pytest.mark.parametrize(
    ("account", "password"),
    [("op1", "wrong password!"), ("nobody", PASSWORD), ("op1,n=admin", PASSWORD)],
)
async def test_bad_logins_are_refused(
    page: Page, daemon: Daemon, shots: Shots, account: str, password: str
) -> None:
    await login(page, daemon, account, password)
    await page.wait_for(
        "document.querySelector('#login-error').textContent === '账号或密码错误'", within=10
    )
    assert await page.eval("document.body.dataset.view") == "login"
    assert await page.eval("sessionStorage.length") == 0
    if account == "nobody":
        await shots.take(page, "bad-login")


async def test_repeated_bad_logins_are_throttled(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Its own daemon: throttling blocks the address, which the other tests share.
    d = Daemon(tmp_path_factory.mktemp("console-throttle"))
    text = d.config.read_text(encoding="utf-8")
    text = text.replace("login_delay_ms = 300", "login_delay_ms = 50\nlogin_failures_max = 2")
    d.config.write_text(text.replace("fps = 5", "enabled = false"), encoding="utf-8")
    await asyncio.to_thread(d.make_accounts)
    await d.start()
    page = await browser.new_page()
    try:
        # Rendering is off on this daemon: the page is told there is no preview to show.
        _, _, body = await asyncio.to_thread(_get, d.url + "/console/config.json")
        assert json.loads(body)["preview"] is False
        for _ in range(2):
            await login(page, d, "op1", "wrong password!")
            await page.wait_for(
                "document.querySelector('#login-error').textContent === '账号或密码错误'"
            )
        # Now even the right password is refused for a while, and the page says why.
        await login(page, d, "op1", PASSWORD)
        await page.wait_for(
            "document.querySelector('#login-error').textContent === '登录失败次数过多，请稍后再试'"
        )
        assert await page.eval("document.body.dataset.view") == "login"
    finally:
        await page.close()
        await d.stop()


async def test_pinyin_and_name_search(page: Page, daemon: Daemon) -> None:
    await logged_in(page, daemon)
    names = "[...document.querySelectorAll('#source-list .source .name')].map(e => e.textContent)"
    assert len(await page.eval(names)) == 6
    for query, expected in [
        ("lsz", ["练市镇路口"]),
        # By name, and by area: 练市镇路口 is in the group 南浔区/交警.
        ("nxq", ["南浔区指挥中心", "练市镇路口"]),
        ("nxqzh", ["南浔区指挥中心"]),
        ("check", ["Checkerboard"]),
        ("时钟", ["时钟"]),
        ("交警", ["练市镇路口"]),
    ]:
        await page.eval(
            "(() => { const i = document.querySelector('#source-search');"
            f" i.value = {json.dumps(query)}; i.dispatchEvent(new Event('input')); }})()"
        )
        assert await page.eval(names) == expected, query
    await page.eval(
        "(() => { const i = document.querySelector('#source-search'); i.value = 'zzzz';"
        " i.dispatchEvent(new Event('input')); })()"
    )
    assert (
        await page.eval("document.querySelector('#source-list').textContent") == "没有匹配的信号源"
    )


# --- changing the wall ------------------------------------------------------------------------


async def test_drag_source_onto_window_and_onto_empty_space(
    page: Page, daemon: Daemon, shots: Shots
) -> None:
    state = await reset(daemon)
    await logged_in(page, daemon)
    w1 = next(w for w in state["windows"] if w["source"] == "bars")
    # The mimic shows the live preview behind the outlines.
    await page.wait_for("document.querySelector('.mimic .preview').naturalWidth > 0")
    before = await preview_region(daemon, w1)
    src = await page.center('.source[data-source="smpte"]')
    dst = await page.center(win_sel(w1["id"]))
    await page.drag(src, dst)
    await page.wait_for(f"document.querySelector('{win_sel(w1['id'])}').dataset.source === 'smpte'")
    after = await wall(daemon)
    assert next(w for w in after["windows"] if w["id"] == w1["id"])["source"] == "smpte"
    assert after["revision"] == state["revision"] + 1
    assert "练市镇路口" in await page.eval(
        f"document.querySelector('{win_sel(w1['id'])}').textContent"
    )
    # And the picture in that window changes from colour bars to the SMPTE pattern.
    for _ in range(50):
        diff = float(np.abs((await preview_region(daemon, w1)).astype(np.int16) - before).mean())
        if diff > 30:
            break
        await asyncio.sleep(0.1)
    assert diff > 30
    # Select the bottom-right window and close it from the toolbar: empty wall appears.
    w4 = max(after["windows"], key=lambda w: (w["y"], w["x"]))
    await page.click(win_sel(w4["id"]))
    await page.wait_for(
        f"document.querySelector('{win_sel(w4['id'])}').classList.contains('selected')"
    )
    await page.click("#t-close")
    await page.wait_for(f"!document.querySelector('{win_sel(w4['id'])}')")
    assert len((await wall(daemon))["windows"]) == 3
    # Drop a source there: a window opens on that tile (snapping is on by default).
    src = await page.center('.source[data-source="clock"]')
    await page.drag(src, await on_canvas(page, w4["x"] + w4["w"] / 2, w4["y"] + w4["h"] / 2))
    await page.wait_for("document.querySelectorAll('.win').length === 4")
    opened = [
        w
        for w in (await wall(daemon))["windows"]
        if w["id"] not in {x["id"] for x in after["windows"]}
    ]
    assert len(opened) == 1
    assert opened[0]["source"] == "clock"
    assert (opened[0]["x"], opened[0]["y"], opened[0]["w"], opened[0]["h"]) == (
        w4["x"],
        w4["y"],
        w4["w"],
        w4["h"],
    )
    await shots.take(page, "drag-source")


async def preview_region(daemon: Daemon, w: dict[str, Any]) -> np.ndarray:
    """The lower third of a window in the wall's preview JPEG (grey levels)."""
    _, _, body = await asyncio.to_thread(_get, daemon.url + "/preview/main.jpg?width=960")
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    k = img.shape[1] / 3840
    x0, x1 = int(w["x"] * k) + 4, int((w["x"] + w["w"]) * k) - 4
    y0, y1 = int((w["y"] + w["h"] * 0.7) * k), int((w["y"] + w["h"] * 0.9) * k)
    return np.asarray(img[y0:y1, x0:x1])


async def on_canvas(page: Page, x: float, y: float) -> tuple[float, float]:
    """The point of the page showing canvas pixel (x, y) of the mimic."""
    p = await page.eval(
        "(() => { const r = document.querySelector('.mimic').getBoundingClientRect();"
        " const c = window.wallctl.mimic.wall.canvas;"
        f" return [r.left + {x} / c.width * r.width, r.top + {y} / c.height * r.height]; }})()"
    )
    return float(p[0]), float(p[1])


async def test_move_resize_with_snap(page: Page, daemon: Daemon) -> None:
    state = await reset(daemon, "3x3")
    await logged_in(page, daemon)
    w = min(state["windows"], key=lambda w: (w["y"], w["x"]))
    other = next(x for x in state["windows"] if x["x"] > w["x"] and x["y"] == w["y"])
    # Select it, then grab its middle and drag it a little to the right with snap off.
    await page.click(win_sel(w["id"]))
    await page.click("#t-snap")
    assert (
        await page.eval("document.querySelector('#t-snap').getAttribute('aria-pressed')") == "false"
    )
    scale = await page.eval("window.wallctl.mimic.scale()")
    x, y = await page.center(win_sel(w["id"]))
    await page.drag((x, y), (x + 100, y + 50))
    rev = state["revision"] + 1
    await page.wait_for(f"Number(document.querySelector('.mimic').dataset.revision) >= {rev}")
    moved = next(x for x in (await wall(daemon))["windows"] if x["id"] == w["id"])
    assert abs(moved["x"] - (w["x"] + 100 * scale)) <= 2 * scale
    assert abs(moved["y"] - (w["y"] + 50 * scale)) <= 2 * scale
    assert (moved["w"], moved["h"]) == (w["w"], w["h"])
    # Resize from the bottom-right handle; then move with snapping on: edges on tiles.
    hx, hy = await page.center(win_sel(w["id"]) + " .handle.se")
    await page.drag((hx, hy), (hx + 80, hy + 40))
    await page.wait_for(f"Number(document.querySelector('.mimic').dataset.revision) >= {rev + 1}")
    resized = next(x for x in (await wall(daemon))["windows"] if x["id"] == w["id"])
    assert abs(resized["w"] - (w["w"] + 80 * scale)) <= 2 * scale
    assert (resized["x"], resized["y"]) == (moved["x"], moved["y"])
    await page.click("#t-snap")
    x, y = await page.center(win_sel(w["id"]))
    await page.drag((x, y), (x - 30, y - 20))
    await page.wait_for(f"Number(document.querySelector('.mimic').dataset.revision) >= {rev + 2}")
    snapped = next(x for x in (await wall(daemon))["windows"] if x["id"] == w["id"])
    tiles = await page.eval("window.wallctl.mimic.wall.tiles")
    lefts = {t["x"] for t in tiles}
    tops = {t["y"] for t in tiles}
    rights = {t["x"] + t["w"] for t in tiles}
    bottoms = {t["y"] + t["h"] for t in tiles}
    assert snapped["x"] in lefts and snapped["y"] in tops
    assert snapped["x"] + snapped["w"] in rights and snapped["y"] + snapped["h"] in bottoms
    assert other["id"] in {x["id"] for x in (await wall(daemon))["windows"]}


async def test_fullscreen_back_and_swap(page: Page, daemon: Daemon, shots: Shots) -> None:
    state = await reset(daemon)
    await logged_in(page, daemon)
    a, b = sorted(state["windows"], key=lambda w: (w["y"], w["x"]))[:2]
    await page.click(win_sel(a["id"]))
    # A test pattern is no camera: no PTZ pad for it.
    assert await page.eval("document.querySelector('#ptz-panel').hidden")
    await page.click("#t-full")
    await page.wait_for(f"document.querySelector('{win_sel(a['id'])}').classList.contains('full')")
    full = next(x for x in (await wall(daemon))["windows"] if x["id"] == a["id"])
    canvas = await page.eval("window.wallctl.mimic.wall.canvas")
    assert (full["x"], full["y"], full["w"], full["h"]) == (0, 0, canvas["width"], canvas["height"])
    # The others are hidden on the wall behind it: the mimic draws them faint.
    others = [w["id"] for w in state["windows"] if w["id"] != a["id"]]
    assert await page.eval(
        f'{others!r}.every(id => document.querySelector(`.win[data-window="${{id}}"]`)'
        ".classList.contains('covered'))"
    )
    await shots.take(page, "fullscreen")
    await page.click("#t-back")
    await page.wait_for(f"!document.querySelector('{win_sel(a['id'])}').classList.contains('full')")
    back = next(x for x in (await wall(daemon))["windows"] if x["id"] == a["id"])
    assert (back["x"], back["y"], back["w"], back["h"]) == (a["x"], a["y"], a["w"], a["h"])
    # Multi-select two windows (the toggle, for touch screens) and swap them.
    await page.click("#t-multi")
    await page.click(win_sel(b["id"]))
    await page.wait_for("document.querySelectorAll('.win.selected').length === 2")
    assert await page.eval("document.querySelector('#t-swap').disabled") is False
    await page.click("#t-swap")
    await page.wait_for(f"window.wallctl.mimic.window('{a['id']}').x === {b['x']}")
    now = {w["id"]: w for w in (await wall(daemon))["windows"]}
    assert (now[a["id"]]["x"], now[a["id"]]["y"]) == (b["x"], b["y"])
    assert (now[b["id"]]["x"], now[b["id"]]["y"]) == (a["x"], a["y"])
    # The keyboard on a laptop: Escape drops the selection, Delete closes what is selected.
    await page.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": "Escape"})
    await page.wait_for("document.querySelectorAll('.win.selected').length === 0")
    await page.click(win_sel(a["id"]))
    await page.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": "Delete"})
    await page.wait_for(f"!document.querySelector('{win_sel(a['id'])}')")
    assert a["id"] not in {w["id"] for w in (await wall(daemon))["windows"]}


async def test_layout_template_click(page: Page, daemon: Daemon, shots: Shots) -> None:
    await reset(daemon)
    await logged_in(page, daemon)
    pics = await page.eval(
        "[...document.querySelectorAll('.template')].map(b => [b.dataset.layout,"
        " b.querySelectorAll('rect').length])"
    )
    assert ["3x3", 9] in pics and ["1+5", 6] in pics and ["pip", 2] in pics
    await page.click('.template[data-layout="3x3"]')
    await page.wait_for("document.querySelectorAll('.win').length === 9")
    st = await wall(daemon)
    assert st["layout"] == "3x3" and len(st["windows"]) == 9
    assert await page.eval("document.querySelector('.mimic').dataset.layout") == "3x3"
    await shots.take(page, "layout-3x3")


async def test_switch_between_walls(page: Page, daemon: Daemon, shots: Shots) -> None:
    main = await reset(daemon)
    await logged_in(page, daemon)
    assert not await page.eval("document.querySelector('#wall-select').hidden")
    await page.eval(
        "(() => { const s = document.querySelector('#wall-select'); s.value = 'side';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    await page.wait_for("window.wallctl.mimic.wall.id === 'side'")
    assert await page.eval("document.querySelectorAll('.tile').length") == 1
    assert "/preview/side.mjpeg" in await page.eval("document.querySelector('.preview').src")
    await page.click('.template[data-layout="2x2"]')
    await page.wait_for("document.querySelectorAll('.win').length === 4")
    c = await daemon.client()
    try:
        side = (await c.call("wall.get", {"wall": "side"}))["state"]
        assert side["layout"] == "2x2" and len(side["windows"]) == 4
        # The main wall did not move; its changes do not show on the side wall's mimic.
        assert (await c.call("wall.get"))["state"]["revision"] == main["revision"]
        await c.call("layout.apply", {"name": "3x3"})
        await asyncio.sleep(0.3)
        assert await page.eval("document.querySelectorAll('.win').length") == 4
        # A source dropped on the side wall lands there.
        w = side["windows"][0]
        await page.drag(
            await page.center('.source[data-source="smpte"]'), await page.center(win_sel(w["id"]))
        )
        await page.wait_for(
            f"document.querySelector('{win_sel(w['id'])}').dataset.source === 'smpte'"
        )
        now = (await c.call("wall.get", {"wall": "side"}))["state"]
        assert next(x for x in now["windows"] if x["id"] == w["id"])["source"] == "smpte"
        await shots.take(page, "side-wall")
    finally:
        await c.close()


async def test_two_commanders_see_each_other_within_a_second(
    browser: Browser, daemon: Daemon, shots: Shots
) -> None:
    await reset(daemon)
    a = await browser.new_page()
    b = await browser.new_page()
    try:
        await logged_in(a, daemon, "op1")
        await logged_in(b, daemon, "op2")
        # Timed in the pages (one machine clock): from the press on a's template button to
        # b's mimic showing that layout, without the test's polling in the figure.
        await a.eval(
            "addEventListener('pointerdown', () => {"
            " window.pressedAt = performance.timeOrigin + performance.now(); }, true)"
        )
        for layout, count in [("1+5", 6), ("4x4", 16), ("2x2", 4)]:
            await b.eval(
                "(() => { window.seenAt = null; const m = document.querySelector('.mimic');"
                " const o = new MutationObserver(() => {"
                f" if (m.dataset.layout === '{layout}' && !window.seenAt) {{"
                " window.seenAt = performance.timeOrigin + performance.now(); o.disconnect(); }"
                " }); o.observe(m, { attributes: true }); })()"
            )
            await a.click(f'.template[data-layout="{layout}"]')
            await b.wait_for("window.seenAt")
            assert await b.eval("document.querySelectorAll('.win').length") == count
            took = await b.eval("window.seenAt") - await a.eval("window.pressedAt")
            assert 0 < took < 1000, took
        # b is told who did it; a sees that it was itself.
        await b.wait_for("document.querySelector('#last-change').textContent.startsWith('op1 于')")
        assert await b.eval("document.querySelector('#last-change').classList.contains('other')")
        assert (await a.eval("document.querySelector('#last-change').textContent")).startswith(
            "本人"
        )
        # And the other way round, with a source drag.
        w = (await wall(daemon))["windows"][0]
        await b.drag(
            await b.center('.source[data-source="smpte"]'), await b.center(win_sel(w["id"]))
        )
        await a.wait_for(
            f"document.querySelector('{win_sel(w['id'])}').dataset.source === 'smpte'", within=1.0
        )
        await shots.take(b, "two-commanders")
    finally:
        await a.close()
        await b.close()


async def test_presets_save_rename_delete(page: Page, daemon: Daemon, shots: Shots) -> None:
    await reset(daemon)
    await logged_in(page, daemon)

    async def presets() -> list[str]:
        c = await daemon.client()
        try:
            return [p["name"] for p in (await c.call("layout.list"))["presets"]]
        finally:
            await c.close()

    await page.click("#preset-save")
    await page.wait_for("document.querySelector('#dialog').open")
    await page.type_into("#dialog-input", "晨会画面")
    await page.click("#dialog-ok")
    await page.wait_for("document.querySelector('.preset[data-preset=\"晨会画面\"]')")
    assert "晨会画面" in await presets()
    await shots.take(page, "presets")
    # Rename.
    await page.click('.preset[data-preset="晨会画面"] [data-action="rename"]')
    await page.wait_for("document.querySelector('#dialog').open")
    await page.eval("document.querySelector('#dialog-input').value = ''")
    await page.type_into("#dialog-input", "夜班画面")
    await page.click("#dialog-ok")
    await page.wait_for("document.querySelector('.preset[data-preset=\"夜班画面\"]')")
    assert await presets() == ["夜班画面"]
    # Delete asks first: cancel keeps it, OK deletes it.
    await page.click('.preset[data-preset="夜班画面"] [data-action="delete"]')
    await page.wait_for("document.querySelector('#dialog').open")
    assert "夜班画面" in await page.eval("document.querySelector('#dialog-text').textContent")
    await shots.take(page, "confirm-delete")
    await page.click("#dialog-cancel")
    await page.wait_for("!document.querySelector('#dialog').open")
    assert await presets() == ["夜班画面"]
    await page.click('.preset[data-preset="夜班画面"] [data-action="delete"]')
    await page.wait_for("document.querySelector('#dialog').open")
    await page.click("#dialog-ok")
    await page.wait_for("!document.querySelector('.preset[data-preset=\"夜班画面\"]')")
    assert await presets() == []


async def test_history_restore_this_wall(page: Page, daemon: Daemon, shots: Shots) -> None:
    before = await reset(daemon)
    c = await daemon.client()
    try:
        await c.call("layout.apply", {"name": "1+5"})
    finally:
        await c.close()
    await logged_in(page, daemon)
    await page.click('[data-tab="history"]')
    await page.wait_for(
        f"document.querySelector('.rev[data-revision=\"{before['revision']}\"] button')"
    )
    await shots.take(page, "history")
    await page.click(f'.rev[data-revision="{before["revision"]}"] button')
    await page.wait_for("document.querySelector('#dialog').open")
    await page.click("#dialog-ok")
    await page.wait_for("document.querySelectorAll('.win').length === 4")
    now = await wall(daemon)
    assert [(w["x"], w["y"], w["w"], w["h"], w["source"]) for w in now["windows"]] == [
        (w["x"], w["y"], w["w"], w["h"], w["source"]) for w in before["windows"]
    ]
    # The history lists the restore as the newest revision, marked current.
    await page.wait_for(
        f"document.querySelector('.rev.current[data-revision=\"{now['revision']}\"]')"
    )


async def test_devices_panel_routes_and_power(
    browser: Browser, daemon: Daemon, shots: Shots
) -> None:
    a = await browser.new_page()
    v = await browser.new_page()
    c = await daemon.client()
    try:
        await logged_in(a, daemon, "op1")
        await logged_in(v, daemon, "viewer1")
        await a.click('[data-tab="devices"]')
        assert await a.eval("document.querySelectorAll('.device').length") == 3
        route = '.device[data-device="matrix"] .route[data-output="2"] select'
        label = await a.eval(f"document.querySelector('{route}').parentNode.textContent")
        assert "会议室投影" in label
        # Route input 3 (视频监控平台) to output 2 as a commander would: pick it.
        await a.eval(
            f"(() => {{ const s = document.querySelector('{route}'); s.value = '3';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        for _ in range(100):
            st = await c.call("device.status", {"device": "matrix"})
            if st["result"]["state"].get("tie.video.2") == 3:
                break
            await asyncio.sleep(0.05)
        assert st["result"]["state"]["tie.video.2"] == 3
        # The viewer's page follows the device event, with its controls disabled.
        await v.click('[data-tab="devices"]')
        await v.wait_for(f"document.querySelector('{route}').value === '3'")
        assert await v.eval(
            "[...document.querySelectorAll('.device button, .device select, .device input')]"
            ".every(e => e.disabled)"
        )
        # Display power: standby from the button.
        await a.click('.device[data-device="panel"] [data-power="off"]')
        for _ in range(100):
            st = await c.call("device.status", {"device": "panel"})
            if st["result"]["state"].get("power") == "off":
                break
            await asyncio.sleep(0.05)
        assert st["result"]["state"]["power"] == "off"
        await a.wait_for(
            "document.querySelector('.device[data-device=\"panel\"] .display-power')"
            ".textContent.includes('电源: 关')"
        )
        await shots.take(a, "devices")
        await a.click('.device[data-device="panel"] [data-power="on"]')
    finally:
        await c.close()
        await a.close()
        await v.close()


async def test_conference_call_and_hang_up(page: Page, daemon: Daemon, shots: Shots) -> None:
    await reset(daemon)
    await logged_in(page, daemon)
    await page.click('[data-tab="conference"]')
    link = '.link[data-link="upper"]'
    await page.wait_for(f"document.querySelector('{link}').dataset.state === 'idle'")
    await page.click('.centre[data-centre="nanxun"] [data-action="call"]')
    # The call goes through its steps; connected, its far end is on the wall.
    await page.wait_for(f"document.querySelector('{link}').dataset.state === 'connected'", 20)
    assert "南浔区指挥中心" in await page.eval(f"document.querySelector('{link}').textContent")
    # Both links busy: no second call can be placed from the directory.
    assert await page.eval(
        "[...document.querySelectorAll('.centre [data-action=\"call\"]')].every(b => b.disabled)"
    )
    await page.wait_for(
        "[...document.querySelectorAll('.win')].some(w => w.dataset.source === 'conf-upper')"
    )
    # Its source has no stream here (a matrix input without a URL): the source.state
    # events turn its badge in the mimic and its dot in the tree to "failed".
    await page.wait_for(
        "document.querySelector('.win[data-source=\"conf-upper\"]').dataset.phase === 'failed'"
        " && document.querySelector('.source[data-source=\"conf-upper\"] .dot')"
        ".dataset.phase === 'failed'"
    )
    c = await daemon.client()
    try:
        st = (await c.call("conference.status"))["links"][0]
        assert st["state"] == "connected" and st["centre"] == "nanxun"
        await shots.take(page, "conference")
        await page.click(f'{link} [data-action="mute"]')
        for _ in range(100):
            if (await c.call("conference.status"))["links"][0]["muted"]:
                break
            await asyncio.sleep(0.05)
        assert (await c.call("conference.status"))["links"][0]["muted"] is True
        await page.click(f'{link} [data-action="hangup"]')
        await page.wait_for(f"document.querySelector('{link}').dataset.state === 'idle'", 20)
        assert (await c.call("conference.status"))["links"][0]["state"] == "idle"
    finally:
        await c.close()


async def test_hostile_names_are_shown_as_text(page: Page, daemon: Daemon) -> None:
    await reset(daemon)
    evil = '<img src=x onerror="window.pwned=1">'
    c = await daemon.client()
    try:
        opened = await c.call(
            "window.open", {"x": 0, "y": 0, "w": 640, "h": 360, "label": evil, "source": "bars"}
        )
        await c.call("layout.save", {"name": evil})
        await logged_in(page, daemon)
        wid = opened["window"]["id"]
        await page.wait_for(f"document.querySelector('{win_sel(wid)} .name')")
        assert (
            await page.eval(f"document.querySelector('{win_sel(wid)} .name').textContent") == evil
        )
        names = await page.eval(
            "[...document.querySelectorAll('.preset .name')].map(e => e.textContent)"
        )
        assert evil in names
        assert await page.eval("document.querySelectorAll('img:not(.preview)').length") == 0
        await asyncio.sleep(0.3)
        assert await page.eval("window.pwned === undefined")
    finally:
        await c.call("layout.delete", {"name": evil})
        await c.close()


CAMERA_CONFIG = """
[[devices]]
id = "cam1"
name = "北门摄像机"
protocol = "onvif"
host = "127.0.0.1"
port = {port}
password = "{password}"
events = false

[[sources]]
id = "north"
name = "北门"
kind = "onvif"
url = "onvif://cam1"
group = "南浔区/北门"
"""


async def test_ptz_pad_moves_and_stops_the_fake_camera(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, shots: Shots
) -> None:
    from drivers.onvif.simulator import FakeCamera

    cam = FakeCamera(user="admin", password="cam pw 1")
    await cam.start(0)
    d = Daemon(tmp_path_factory.mktemp("console-ptz"))
    text = d.config.read_text(encoding="utf-8").replace("fps = 5", "enabled = false")
    text += CAMERA_CONFIG.format(port=cam.port, password="cam pw 1")
    d.config.write_text(text, encoding="utf-8")
    await asyncio.to_thread(d.make_accounts)
    await d.start()
    page = await browser.new_page()
    c = await d.client()
    try:
        for _ in range(200):
            cams = (await c.call("camera.list"))["cameras"]
            if cams and cams[0]["status"] == "ok":
                break
            await asyncio.sleep(0.05)
        assert cams[0]["status"] == "ok", cams
        w = (await c.call("wall.get"))["state"]["windows"][0]["id"]
        await c.call("window.set_source", {"window": w, "source": "north"})
        await logged_in(page, d)
        await page.click(win_sel(w))
        await page.wait_for("!document.querySelector('#ptz-panel').hidden")
        assert "北门" in await page.eval("document.querySelector('#ptz-panel').textContent")
        # The camera's presets are offered.
        await page.wait_for("document.querySelectorAll('.ptz-presets option').length > 1")
        # Press and hold "→": the camera moves right; release: it stops.
        cam.calls.clear()
        x, y = await page.center('#ptz-panel .pad[data-pan="1"][data-tilt="0"]')
        await page.mouse("mouseMoved", x, y, 0)
        await page.mouse("mousePressed", x, y)
        for _ in range(100):
            if any(call.operation == "ContinuousMove" for call in cam.calls):
                break
            await asyncio.sleep(0.02)
        assert cam.velocity[0] > 0 and cam.velocity[1] == 0
        await shots.take(page, "ptz")
        # Held longer than the camera's dead-man time (1 s): the page keeps it moving.
        await asyncio.sleep(1.5)
        assert "Stop" not in [call.operation for call in cam.calls]
        assert cam.velocity[0] > 0
        await page.mouse("mouseReleased", x, y)
        for _ in range(100):
            if any(call.operation == "Stop" for call in cam.calls):
                break
            await asyncio.sleep(0.02)
        ops = [call.operation for call in cam.calls]
        assert "ContinuousMove" in ops and "Stop" in ops
        assert ops.index("ContinuousMove") < ops.index("Stop")
        # Selecting a window that shows no camera closes the pad.
        other = (await c.call("wall.get"))["state"]["windows"][1]["id"]
        await page.click(win_sel(other))
        await page.wait_for("document.querySelector('#ptz-panel').hidden")
    finally:
        await c.close()
        await page.close()
        await d.stop()
        await cam.stop()


# --- viewer, language, screen sizes, reload ----------------------------------------------


async def test_viewer_sees_everything_and_changes_nothing(
    page: Page, daemon: Daemon, shots: Shots
) -> None:
    state = await reset(daemon)
    await logged_in(page, daemon, "viewer1")
    assert await page.eval("document.body.classList.contains('readonly')")
    assert not await page.eval("document.querySelector('#readonly-note').hidden")
    disabled = await page.eval(
        "[...document.querySelectorAll('.template, #preset-save, #toolbar button:not(#t-multi)')]"
        ".every(b => b.disabled)"
    )
    assert disabled
    # Clicking a template, dragging a window or a source does nothing.
    await page.eval("document.querySelector('.template[data-layout=\"3x3\"]').click()")
    w = state["windows"][0]
    x, y = await page.center(win_sel(w["id"]))
    await page.drag((x, y), (x + 150, y + 90))
    await page.drag(await page.center('.source[data-source="smpte"]'), (x, y))
    await asyncio.sleep(0.5)
    assert (await wall(daemon))["revision"] == state["revision"]
    assert await page.eval("document.querySelectorAll('.win').length") == 4
    # The server refuses anyway, whatever the page is made to send.
    err = await page.eval(
        f"window.wallctl.conn.call('window.close', {{window: '{w['id']}'}})"
        ".then(() => 'ok', e => e.code)"
    )
    assert err == "not_permitted"
    assert (await wall(daemon))["revision"] == state["revision"]
    await page.click(win_sel(w["id"]))
    await shots.take(page, "viewer")


async def test_language_toggle(page: Page, daemon: Daemon, shots: Shots) -> None:
    await logged_in(page, daemon)
    assert await page.eval("document.querySelector('#logout').textContent") == "退出"
    await page.click("#lang")
    assert await page.eval("document.querySelector('#logout').textContent") == "Log out"
    assert await page.eval("document.querySelector('#who').textContent") == "OP1 · operator"
    assert await page.eval("document.documentElement.lang") == "en"
    assert (await page.eval("document.querySelector('#revision').textContent")).startswith(
        "revision "
    )
    await shots.take(page, "english")
    await page.click("#lang")
    assert await page.eval("document.querySelector('#logout').textContent") == "退出"


async def test_tablet_size_fits(browser: Browser, daemon: Daemon, shots: Shots) -> None:
    await reset(daemon, "1+5")
    p = await browser.new_page(1280, 800)
    try:
        await logged_in(p, daemon)
        fits = await p.eval(
            "document.documentElement.scrollWidth <= 1280"
            " && document.documentElement.scrollHeight <= 800"
        )
        assert fits
        small = await p.eval(
            "[...document.querySelectorAll('button:not([hidden]), .source, input')]"
            ".filter(e => e.offsetParent && e.getBoundingClientRect().height < 44)"
            ".map(e => e.id || e.className)"
        )
        assert small == []
        box = await p.eval(
            "(() => { const r = document.querySelector('.mimic').getBoundingClientRect();"
            " return [r.left, r.top, r.right, r.bottom]; })()"
        )
        assert box[0] >= 0 and box[2] <= 1280 and box[3] <= 800 and box[2] - box[0] > 600
        # The toolbar fits on one line, leaving the height to the mimic.
        rows = await p.eval(
            "new Set([...document.querySelectorAll('#toolbar button')]"
            ".map(b => Math.round(b.getBoundingClientRect().top))).size"
        )
        assert rows == 1
        await shots.take(p, "tablet")
    finally:
        await p.close()


async def test_touch_screen_tablet(browser: Browser, daemon: Daemon) -> None:
    state = await reset(daemon)
    p = await browser.new_page(1280, 800)
    try:
        await p.enable_touch()
        await logged_in(p, daemon)
        w1, w2 = sorted(state["windows"], key=lambda w: (w["y"], w["x"]))[:2]
        # A finger drags a source from the tree (sideways) onto a window.
        await p.touch_drag(
            await p.center('.source[data-source="smpte"]'), await p.center(win_sel(w2["id"]))
        )
        await p.wait_for(
            f"document.querySelector('{win_sel(w2['id'])}').dataset.source === 'smpte'"
        )
        # Tap a window to select it, then tap a source: it goes into that window.
        x, y = await p.center(win_sel(w1["id"]))
        await p.touch_drag((x, y), (x, y))
        await p.wait_for(
            f"document.querySelector('{win_sel(w1['id'])}').classList.contains('selected')"
        )
        src = await p.center('.source[data-source="clock"]')
        await p.touch_drag(src, src)
        await p.wait_for(
            f"document.querySelector('{win_sel(w1['id'])}').dataset.source === 'clock'"
        )
        # Drag the selected window with the finger (snapping on): it lands on a tile.
        await p.touch_drag((x, y), (x + 40, y + 300))
        await p.wait_for(f"window.wallctl.mimic.window('{w1['id']}').y > 0")
        moved = next(w for w in (await wall(daemon))["windows"] if w["id"] == w1["id"])
        assert (moved["x"], moved["y"]) == (0, 1080)
        assert moved["source"] == "clock"
    finally:
        await p.close()


async def test_reload_keeps_or_asks_for_the_session(page: Page, daemon: Daemon) -> None:
    await logged_in(page, daemon)
    tokens = "token" in await page.eval("window.wallctl.conn.hello.authentication.mechanisms")
    await page.goto(daemon.url + "/")
    if tokens:
        await page.wait_for(APP_READY)
        assert await page.eval("window.wallctl.identity.account") == "op1"
        # Logout revokes the token: a reload then asks for the password.
        await page.click("#logout")
        await page.wait_for("document.body.dataset.view === 'login'")
        await page.goto(daemon.url + "/")
        await page.wait_for("document.body.dataset.view === 'login'")
    else:
        # No session tokens on this server: nothing password-equivalent is kept, so a
        # reload asks again (the account is remembered).
        await page.wait_for("document.body.dataset.view === 'login'")
        assert await page.eval("document.querySelector('#account').value") == "op1"
    stored = await page.eval("JSON.stringify({...sessionStorage, ...localStorage})")
    assert PASSWORD not in stored and "clientKey" not in stored


async def test_kicked_session_does_not_come_back(page: Page, daemon: Daemon) -> None:
    await logged_in(page, daemon)
    session = await page.eval("window.wallctl.conn.identified.session")
    admin = await daemon.client("admin1")
    try:
        await admin.call("session.kick", {"session": session, "reason": "交班"})
    finally:
        await admin.close()
    await page.wait_for("document.body.dataset.view === 'login'")
    said = await page.eval("document.querySelector('#login-error').textContent")
    assert said.startswith("管理员已结束本次登录: ") and "admin1" in said and "交班" in said
    # No reconnection behind the commander's back, and no token left to reload with.
    await asyncio.sleep(1.5)
    assert await page.eval("document.body.dataset.view") == "login"
    assert await page.eval("sessionStorage.getItem('wallctl.session')") is None


# --- a dropped connection ----------------------------------------------------------------


async def test_connection_lost_banner_reconnect_and_resync(
    page: Page, daemon: Daemon, shots: Shots
) -> None:
    first = await reset(daemon)
    c = await daemon.client()
    try:
        await c.call("layout.apply", {"name": "3x3"})
    finally:
        await c.close()
    await logged_in(page, daemon)
    assert await page.eval("document.querySelectorAll('.win').length") == 9
    await daemon.stop(kill=True)
    await page.wait_for("!document.querySelector('#banner').hidden", within=10)
    assert "断开" in await page.eval("document.querySelector('#banner').textContent")
    assert await page.eval("document.querySelector('#conn').dataset.state") == "down"
    await shots.take(page, "disconnected")
    # While the page is cut off, the wall changes (the CLI restores the 2x2 revision).
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "wallctl",
            "state",
            "restore",
            "--config",
            str(daemon.config),
            "--revision",
            str(first["revision"]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    await daemon.start()
    # The page reconnects by itself and shows what the wall is now.
    await page.wait_for("document.querySelector('#conn').dataset.state === 'up'", within=20)
    await page.wait_for("document.querySelectorAll('.win').length === 4")
    now = await wall(daemon)
    assert await mimic_revision(page) == now["revision"]
    assert "已重新连接" in await page.eval("document.querySelector('#banner').textContent")
    # The live preview comes back too (its stream died with the daemon).
    await page.wait_for(
        "(i => !i.hidden && i.complete && i.naturalWidth > 0)(document.querySelector('.preview'))"
    )
    await shots.take(page, "reconnected")
    # And it is a working session again.
    await page.click('.template[data-layout="1+5"]')
    await page.wait_for("document.querySelectorAll('.win').length === 6")
    assert (await wall(daemon))["layout"] == "1+5"


async def test_a_page_that_falls_behind_is_resynced(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Its own daemon with the smallest event queue. The page's script is paused in the
    # debugger, so Chromium stops reading the socket (WebSocket flow control), the
    # server's queue for it overflows while the wall keeps changing, and the server
    # sends `resync` and a fresh snapshot: the page must end on the wall as it is.
    d = Daemon(tmp_path_factory.mktemp("console-resync"))
    text = d.config.read_text(encoding="utf-8").replace(
        "login_delay_ms = 300",
        "login_delay_ms = 300\nevent_queue = 8\nrate_limit = 100000\nrate_burst = 100000",
    )
    # Keepalive pings would time the paused page out on a busy machine: not this test.
    text = text.replace(
        "ping_interval = 5\nping_timeout = 5", "ping_interval = 120\nping_timeout = 120"
    )
    d.config.write_text(text.replace("fps = 5", "enabled = false"), encoding="utf-8")
    await asyncio.to_thread(d.make_accounts)
    await d.start()
    page = await browser.new_page()
    c = await d.client()
    try:
        # Sixteen windows: each event is bigger, so fewer changes fill the buffers.
        await c.call("layout.apply", {"name": "4x4"})
        await logged_in(page, d)
        w = (await c.call("wall.get"))["state"]["windows"][0]["id"]
        await page.send("Debugger.enable")
        await page.send("Debugger.pause")
        resynced = False
        for n in range(40000):
            await c.call("window.move", {"window": w, "x": n % 1000, "y": 0})
            if n % 250 == 249:
                _, _, body = await asyncio.to_thread(_get, d.url + "/metrics")
                if re.search(rb"^wallctl_api_resyncs_total [1-9]", body, re.M):
                    resynced = True
                    break
        assert resynced, "the server never had to resync the paused page"
        await page.send("Debugger.resume")
        await page.wait_for(
            "document.querySelector('#banner').textContent === '事件积压，已重新同步'"
        )
        now = (await c.call("wall.get"))["state"]
        await page.wait_for(
            f"Number(document.querySelector('.mimic').dataset.revision) === {now['revision']}"
        )
        assert await page.eval(f"window.wallctl.mimic.window('{w}').x") == n % 1000
    finally:
        await c.close()
        await page.close()
        await d.stop()


# --- the API method the console added ------------------------------------------------------------


async def test_layout_rename_refuses_bad_input(daemon: Daemon) -> None:
    c = await daemon.client("op1")
    v = await daemon.client("viewer1")
    try:
        count = len((await c.call("wall.get"))["state"]["windows"])
        await c.call("layout.save", {"name": "甲"})
        await c.call("layout.save", {"name": "乙"})
        cases: list[tuple[dict[str, Any], str, str | None]] = [
            ({"name": "甲", "to": "乙"}, "invalid_field", "params.to"),
            ({"name": "丙", "to": "丁"}, "not_found", "params.name"),
            ({"name": "甲", "to": "2x2"}, "invalid_field", "params.to"),
            ({"name": "甲", "to": "a\nb"}, "invalid_field", "params.to"),
            ({"name": "甲", "to": "x" * 65}, "invalid_field", "params.to"),
            ({"name": "甲", "to": 5}, "invalid_field", "params.to"),
            ({"name": "甲"}, "invalid_field", "params.to"),
            ({"name": "甲", "to": "戊", "extra": 1}, "invalid_field", "params.extra"),
            ({"name": "甲", "to": "戊", "wall": "nowhere"}, "not_found", "params.wall"),
        ]
        for params, code, field in cases:
            with pytest.raises(ApiError) as e:
                await c.call("layout.rename", params)
            assert (e.value.code, e.value.field) == (code, field), params
        with pytest.raises(ApiError) as e:
            await v.call("layout.rename", {"name": "甲", "to": "戊"})
        assert e.value.code == "not_permitted"
        names = [p["name"] for p in (await c.call("layout.list"))["presets"]]
        assert names == ["乙", "甲"]
        # The rename itself keeps the windows and is applied by its new name.
        r = await c.call("layout.rename", {"name": "甲", "to": "戊"})
        assert r["name"] == "戊" and r["windows"] == count
        await c.call("layout.apply", {"name": "戊"})
        with pytest.raises(ApiError) as e:
            await c.call("layout.apply", {"name": "甲"})
        assert e.value.code == "not_found"
        for name in ("乙", "戊"):
            await c.call("layout.delete", {"name": name})
    finally:
        await c.close()
        await v.close()
