"""The commander's console offers terminals in its source picker (headless Chromium).

The console reads ``source.list``: a terminal registered while the daemon runs is offered
after a login, with its Chinese name, and dragging it onto a window shows it there. One
registered while the console is open appears without a reload (``source.added``) and goes
when it is removed (``source.removed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# tests/ is on sys.path (pytest's rootdir-relative packages): the console's own helpers.
from console.cdp import Browser
from console.conftest import CHROMIUM, Daemon, login

from wallctl.store import Actor, Store
from wallctl.terminals.identities import Terminals
from wallctl.terminals.sources import REFRESH_S

APP_READY = "document.body.dataset.view === 'app' && document.body.dataset.ready === 'true'"


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    d = Daemon(tmp_path)
    await asyncio.to_thread(d.make_accounts)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def enrol(d: Daemon, terminal: str, name: str) -> None:
    """What `wallctl terminals add` does: the table, behind the running daemon's back."""
    store = Store(d.state / "wallctl.db", "normal")
    try:
        Terminals(store).add(terminal, name, Actor("test"))
    finally:
        store.close()


def retire(d: Daemon, terminal: str) -> None:
    """What `wallctl terminals remove` does."""
    store = Store(d.state / "wallctl.db", "normal")
    try:
        Terminals(store).remove(terminal)
    finally:
        store.close()


@pytest.mark.timeout(120)
async def test_a_terminal_in_the_console_picker_goes_on_the_wall(daemon: Daemon) -> None:
    if not await asyncio.to_thread(Path(CHROMIUM).exists):
        pytest.skip("Debian chromium is not installed")
    await asyncio.to_thread(enrol, daemon, "p9", "巡逻九组")
    await asyncio.sleep(REFRESH_S * 1.5)
    browser = await Browser.launch()
    try:
        page = await browser.new_page()
        await login(page, daemon, "op1")
        await page.wait_for(APP_READY)
        item = '.source[data-source="mobile/p9"]'
        await page.wait_for(f"!!document.querySelector('{item}')")
        assert "巡逻九组" in await page.eval(f"document.querySelector('{item}').textContent")
        c = await daemon.client()
        try:
            state = (await c.call("wall.get"))["state"]
            target = state["windows"][0]["id"]
            sel = f'.win[data-window="{target}"]'
            await page.drag(await page.center(item), await page.center(sel))
            await page.wait_for(f"document.querySelector('{sel}').dataset.source === 'mobile/p9'")
            after = (await c.call("wall.get"))["state"]
            assert [w["source"] for w in after["windows"] if w["id"] == target] == ["mobile/p9"]
        finally:
            await c.close()
        # Registered while the console is open: offered without a reload, gone on removal.
        await asyncio.to_thread(enrol, daemon, "p10", "巡逻十组")
        late = '.source[data-source="mobile/p10"]'
        await page.wait_for(f"!!document.querySelector('{late}')", within=REFRESH_S * 5)
        assert "巡逻十组" in await page.eval(f"document.querySelector('{late}').textContent")
        await asyncio.to_thread(retire, daemon, "p10")
        await page.wait_for(f"!document.querySelector('{late}')", within=REFRESH_S * 5)
        assert await page.eval(f"!!document.querySelector('{item}')")
        await page.close()
    finally:
        await browser.close()
