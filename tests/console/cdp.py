"""A small Chrome DevTools Protocol driver: headless Chromium from Python, no npm.

One browser process; each :class:`Page` lives in its own browser context (separate
cookies and storage: two "browsers" for the tests that need two commanders). Commands go
over the browser's WebSocket with flattened sessions; events we wait for are matched by
method name.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--mute-audio",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--remote-debugging-port=0",
]


class CdpError(Exception):
    pass


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    # Its own process group, so a test that fails halfway still kills every helper.
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


class Browser:
    def __init__(self, proc: subprocess.Popen[bytes], ws: ClientConnection, profile: Path) -> None:
        self.proc = proc
        self.ws = ws
        self.profile = profile
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[tuple[str | None, str, asyncio.Queue[dict[str, Any]]]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def launch(cls, width: int = 1920, height: int = 1080) -> Browser:
        profile = Path(tempfile.mkdtemp(prefix="wallctl-chromium-"))
        proc = _spawn(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        )
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and len(port_file.read_text().splitlines()) >= 2:
                break
            if proc.poll() is not None:
                raise CdpError(f"chromium exited with {proc.returncode}")
            await asyncio.sleep(0.05)
        else:
            proc.kill()
            raise CdpError("chromium did not open its DevTools port")
        port, path = port_file.read_text().splitlines()[:2]
        ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=64 * 1024 * 1024)
        return cls(proc, ws, profile)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                for session, method, q in self._listeners:
                    if method == msg.get("method") and session in (None, msg.get("sessionId")):
                        q.put_nowait(msg.get("params", {}))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        mid = next(self._ids)
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        await self.ws.send(json.dumps(msg))
        async with asyncio.timeout(30):
            reply = await fut
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def listen(self, method: str, session: str | None = None) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listeners.append((session, method, q))
        return q

    async def new_page(self, width: int = 1920, height: int = 1080) -> Page:
        ctx = await self.send("Target.createBrowserContext", {"disposeOnDetach": True})
        target = await self.send(
            "Target.createTarget",
            {"url": "about:blank", "browserContextId": ctx["browserContextId"]},
        )
        att = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, att["sessionId"], target["targetId"], ctx["browserContextId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.resize(width, height)
        return page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close"), 5)
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser: Browser, session: str, target: str, context: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.context = context
        self.console: asyncio.Queue[dict[str, Any]] = browser.listen(
            "Runtime.exceptionThrown", session
        )

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    async def resize(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def goto(self, url: str) -> None:
        loaded = self.browser.listen("Page.loadEventFired", self.session)
        await self.send("Page.navigate", {"url": url})
        async with asyncio.timeout(20):
            await loaded.get()

    async def eval(self, expression: str) -> Any:
        r = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in r:
            raise CdpError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    async def wait_for(self, expression: str, within: float = 10, interval: float = 0.02) -> Any:
        """Poll until ``expression`` is truthy (at most ``within`` seconds); its value."""
        last: Any = None
        try:
            async with asyncio.timeout(within):
                # A DOM node comes back as {} (falsy here): count it as found.
                probe = f"(v => v instanceof Node ? true : v)({expression})"
                while True:
                    last = await self.eval(probe)
                    if last:
                        return last
                    await asyncio.sleep(interval)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {expression!r} (last {last!r})") from None

    async def center(self, selector: str) -> tuple[float, float]:
        box = await self.eval(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if not box:
            raise AssertionError(f"no element {selector}")
        return float(box[0]), float(box[1])

    async def mouse(self, kind: str, x: float, y: float, buttons: int = 1) -> None:
        await self.send(
            "Input.dispatchMouseEvent",
            {
                "type": kind,
                "x": x,
                "y": y,
                "button": "left",
                "buttons": buttons if kind != "mouseReleased" else 0,
                "clickCount": 1,
            },
        )

    async def click(self, selector: str) -> None:
        x, y = await self.center(selector)
        await self.mouse("mouseMoved", x, y, 0)
        await self.mouse("mousePressed", x, y)
        await self.mouse("mouseReleased", x, y)

    async def drag(
        self, start: tuple[float, float], end: tuple[float, float], steps: int = 8
    ) -> None:
        await self.mouse("mouseMoved", *start, buttons=0)
        await self.mouse("mousePressed", *start)
        for i in range(1, steps + 1):
            f = i / steps
            await self.mouse(
                "mouseMoved", start[0] + (end[0] - start[0]) * f, start[1] + (end[1] - start[1]) * f
            )
        await self.mouse("mouseReleased", *end)

    async def enable_touch(self) -> None:
        await self.send(
            "Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5}
        )

    async def touch_drag(
        self, start: tuple[float, float], end: tuple[float, float], steps: int = 8
    ) -> None:
        """A finger: down at ``start``, moved to ``end``, lifted (a tap when they are equal)."""
        point = {"x": start[0], "y": start[1]}
        await self.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
        if start != end:
            for i in range(1, steps + 1):
                f = i / steps
                point = {
                    "x": start[0] + (end[0] - start[0]) * f,
                    "y": start[1] + (end[1] - start[1]) * f,
                }
                await self.send(
                    "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]}
                )
        await self.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    async def type_into(self, selector: str, text: str) -> None:
        await self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.send("Input.insertText", {"text": text})

    async def screenshot(self, path: Path) -> Path:
        r = await self.send("Page.captureScreenshot", {"format": "png"})
        data = base64.b64decode(r["data"])

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await asyncio.to_thread(write)
        return path

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.browser.send("Target.closeTarget", {"targetId": self.target})
        with contextlib.suppress(Exception):
            await self.browser.send(
                "Target.disposeBrowserContext", {"browserContextId": self.context}
            )
