"""A real daemon (subprocess, so it can be killed and restarted) and a real Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from wallctl.accounts import Accounts, Role
from wallctl.client import Client, connect
from wallctl.store import Store

from .cdp import CHROMIUM, Browser, Page

PASSWORD = "correct horse battery"
ACCOUNTS = {
    "op1": Role.OPERATOR,
    "op2": Role.OPERATOR,
    "viewer1": Role.VIEWER,
    "admin1": Role.ADMIN,
}
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

CONFIG = """
[daemon]
name = "测试指挥中心"
state_dir = "{state}"
durability = "normal"

[log]
level = "warning"

[http]
host = "127.0.0.1"
port = {http}

[api]
port = {api}
login_delay_ms = 300
ping_interval = 5
ping_timeout = 5

[wall]
id = "main"
name = "主屏"
startup_layout = "2x2"
startup_sources = ["bars", "gradient", "checkers", "clock"]

[wall.tiles]
rows = 2
cols = 2
width_mm = 1209.6
height_mm = 680.4
bezel_mm = 1.75
width_px = 1920
height_px = 1080

[[sources]]
id = "bars"
name = "测试信号：彩条"
kind = "test_pattern"
pattern = "bars"
group = "测试信号"

[[sources]]
id = "gradient"
name = "南浔区指挥中心"
kind = "test_pattern"
pattern = "gradient"
group = "测试信号"

[[sources]]
id = "checkers"
name = "Checkerboard"
kind = "test_pattern"
pattern = "checkers"

[[sources]]
id = "clock"
name = "时钟"
kind = "test_pattern"
pattern = "clock"
group = "测试信号"

[[sources]]
id = "smpte"
name = "练市镇路口"
kind = "test_pattern"
pattern = "smpte"
group = "南浔区/交警"

# A second, small wall: the console switches between walls.
[walls.side]
id = "side"
name = "侧屏"
min_diagonal_cm = 10

[walls.side.tiles]
rows = 1
cols = 1
width_mm = 1209.6
height_mm = 680.4
width_px = 1920
height_px = 1080

# The software compositor at a low rate: the preview is real, the CPU bill small.
[render]
fps = 5

[[devices]]
id = "matrix"
name = "主矩阵"
protocol = "extron-sis"
simulate = true
size = "8x8"

[devices.inputs]
1 = "市级会议终端"
3 = "视频监控平台"

[devices.outputs]
1 = "大屏输入1"
2 = "会议室投影"

[[devices]]
id = "panel"
name = "左上屏"
protocol = "samsung-mdc"
simulate = true
warmup_s = 0

[[devices]]
id = "codec"
name = "市级会议终端"
protocol = "cisco-xapi"
simulate = true
# The simulator the daemon hosts speaks tshell (the WebSocket form runs standalone).
transport = "tshell"

[[sources]]
id = "conf-upper"
name = "市级会议"
kind = "matrix"
group = "会议"

[conference]
connect_timeout_s = 10

[[conference.codecs]]
id = "upper"
name = "上级会议"
device = "codec"
source = "conf-upper"

[[conference.centres]]
id = "huzhou"
name = "湖州市指挥中心"
level = "city"
sip = "huzhou@city.example"

[[conference.centres]]
id = "nanxun"
name = "南浔区指挥中心"
level = "district"
parent = "huzhou"
sip = "nanxun@district.example"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """``wallctl run`` on fixed free ports, restartable on the same state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.api_port = free_port()
        self.config = root / "wallctl.toml"
        self.config.write_text(
            CONFIG.format(state=self.state, http=self.http_port, api=self.api_port),
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api_url(self) -> str:
        return f"ws://127.0.0.1:{self.api_port}/api/v1"

    def make_accounts(self) -> None:
        store = Store(self.state / "wallctl.db", "normal")
        try:
            accounts = Accounts(store, iterations=4096)
            for name, role in ACCOUNTS.items():
                accounts.add_sync(name, PASSWORD, role, name.upper())
        finally:
            store.close()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "wallctl", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self) -> None:
        self.proc = await asyncio.to_thread(self._spawn)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                body = await asyncio.to_thread(self._get, "/healthz")
                if json.loads(body)["components"].get("console", {}).get("status") == "ok":
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError("daemon did not become ready")

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=2) as r:
            return bytes(r.read())

    async def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 15)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await asyncio.to_thread(self.proc.wait)
        self.proc = None

    async def client(self, account: str = "op2", **kw: Any) -> Client:
        return await connect(self.api_url, account=account, password=PASSWORD, **kw)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("console-daemon"))
    await asyncio.to_thread(d.make_accounts)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(Path(CHROMIUM).exists):
        pytest.fail("Debian chromium is not installed (make deb-test-deps installs it)")
    b = await Browser.launch()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Shots:
    return Shots(tmp_path_factory.mktemp("console-screenshots"))


class Shots:
    """Screenshots as test artifacts; also docs/images/ with WALLCTL_DOC_IMAGES=1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.docs = os.environ.get("WALLCTL_DOC_IMAGES") == "1"

    async def take(self, page: Page, name: str) -> Path:
        # A picture of the console shows the live preview once its first frame is in.
        with contextlib.suppress(AssertionError):
            await page.wait_for(
                "(i => !i || document.body.dataset.view !== 'app' || !window.wallctl"
                " || !window.wallctl.config.preview || (!i.hidden && i.naturalWidth > 0))"
                "(document.querySelector('.mimic .preview'))",
                within=5,
            )
        if self.docs:
            # The preview runs a few frames behind the outlines: let it catch up.
            await asyncio.sleep(0.8)
        path = await page.screenshot(self.folder / f"console-{name}.png")
        if self.docs:
            DOC_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_IMAGES / path.name)
        return path


async def login(page: Page, daemon: Daemon, account: str, password: str = PASSWORD) -> None:
    await page.goto(daemon.url + "/")
    await page.wait_for("document.body.dataset.view === 'login'")
    await page.eval("document.querySelector('#account').value = ''")
    await page.type_into("#account", account)
    await page.type_into("#password", password)
    await page.click("#login-submit")
