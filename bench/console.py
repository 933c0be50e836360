"""The commander's console in headless Chromium against a real daemon on loopback.

- click_to_mimic_ms: a click on a layout template button until the mimic shows the new
  layout (the DOM updated and the next animation frame painted), measured in the page
  with performance.now(); median over 50 clicks cycling through templates. Target
  <= 150 ms. Baseline in the same run: api_roundtrip_ms, a `wall.get` request from the
  same page over the same WebSocket (the floor any click pays).
- page_weight_kb: bytes on the wire for the first load of the page (every file it loads,
  headers included, gzip as the browser asks for it), from the DevTools Network events.
  Target <= 500 KB. page_raw_kb: the same files uncompressed.
- other_browser_ms: the same clicks seen by a second commander's page (another browser
  context): from the click in the first page to the second page's mimic showing the
  layout (the issue asks for within 1 s).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, median, write_result

sys.path.insert(0, str(ROOT))
from tests.console.cdp import Browser
from tests.console.conftest import Daemon, login

CLICKS = 50
TEMPLATES = ["2x2", "3x3", "1+5", "4x4", "1+7", "pip", "1x1"]

MEASURE_CLICK = """
(name) => new Promise((resolve) => {
  const stage = document.querySelector('.mimic');
  const button = document.querySelector(`.template[data-layout="${name}"]`);
  const t0 = performance.now();
  (window.clicks = window.clicks || []).push({ name, at: performance.timeOrigin + t0 });
  const done = () => {
    if (stage.dataset.layout !== name) return false;
    obs.disconnect();
    requestAnimationFrame(() => resolve(performance.now() - t0));
    return true;
  };
  const obs = new MutationObserver(done);
  obs.observe(stage, { attributes: true, attributeFilter: ['data-layout'] });
  button.click();
})
"""

MEASURE_ROUNDTRIP = """
async () => {
  const t0 = performance.now();
  await window.wallctl.conn.call('wall.get');
  return performance.now() - t0;
}
"""


async def page_weight(browser: Browser, daemon: Daemon) -> tuple[float, float, int]:
    page = await browser.new_page()
    try:
        await page.send("Network.enable")
        await page.send("Network.setCacheDisabled", {"cacheDisabled": True})
        got = browser.listen("Network.responseReceived", page.session)
        done = browser.listen("Network.loadingFinished", page.session)
        await page.goto(daemon.url + "/")
        await page.wait_for("document.body.dataset.view === 'login'")
        await asyncio.sleep(0.5)
        urls: dict[str, str] = {}
        while not got.empty():
            r = got.get_nowait()
            urls[r["requestId"]] = r["response"]["url"]
        wire = 0.0
        n = 0
        while not done.empty():
            d = done.get_nowait()
            if d["requestId"] in urls:
                wire += d["encodedDataLength"]
                n += 1
        raw = await page.eval(
            "Promise.all(performance.getEntriesByType('resource').map(e => e.decodedBodySize)"
            ".concat([performance.getEntriesByType('navigation')[0].decodedBodySize]))"
            ".then(a => a.reduce((x, y) => x + y, 0))"
        )
        return wire / 1024, float(raw) / 1024, n
    finally:
        await page.close()


WATCH = """
(() => {
  window.seen = [];
  const m = document.querySelector('.mimic');
  new MutationObserver(() => window.seen.push(
    { name: m.dataset.layout, at: performance.timeOrigin + performance.now() }
  )).observe(m, { attributes: true, attributeFilter: ['data-layout'] });
})()
"""


async def clicks(browser: Browser, daemon: Daemon) -> tuple[list[float], list[float], list[float]]:
    page = await browser.new_page()
    other = await browser.new_page()
    try:
        await login(other, daemon, "op2")
        await other.wait_for("document.body.dataset.ready === 'true'")
        await other.eval(WATCH)
        await login(page, daemon, "op1")
        await page.wait_for("document.body.dataset.ready === 'true'")
        times: list[float] = []
        seq = [TEMPLATES[i % len(TEMPLATES)] for i in range(CLICKS + 1)]
        current = await page.eval("document.querySelector('.mimic').dataset.layout")
        if seq[0] == current:
            seq = seq[1:]
        for name in seq[:CLICKS]:
            ms = await page.eval(f"({MEASURE_CLICK})({name!r})")
            times.append(float(ms))
        rtt = [float(await page.eval(f"({MEASURE_ROUNDTRIP})()")) for _ in range(CLICKS)]
        # The second commander's page: from the click in the first to its own mimic.
        await asyncio.sleep(0.5)
        pressed = await page.eval("window.clicks")
        seen = await other.eval("window.seen")
        remote = []
        for c in pressed:
            hit = next((x for x in seen if x["name"] == c["name"] and x["at"] >= c["at"]), None)
            if hit is not None:
                remote.append(float(hit["at"] - c["at"]))
        return times, rtt, remote
    finally:
        await page.close()
        await other.close()


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wallctl-bench-console-") as tmp:
        daemon = Daemon(Path(tmp))
        await asyncio.to_thread(daemon.make_accounts)
        await daemon.start()
        browser = await Browser.launch()
        try:
            wire_kb, raw_kb, files = await page_weight(browser, daemon)
            times, rtt, remote = await clicks(browser, daemon)
        finally:
            await browser.close()
            await daemon.stop()
    figures: dict[str, float] = {
        "click_to_mimic_ms": round(median(times), 2),
        "click_to_mimic_p90_ms": round(statistics.quantiles(times, n=10)[-1], 2),
        "click_to_mimic_max_ms": round(max(times), 2),
        "api_roundtrip_ms": round(median(rtt), 2),
        "other_browser_ms": round(median(remote), 2),
        "other_browser_max_ms": round(max(remote), 2),
        "page_weight_kb": round(wire_kb, 1),
        "page_raw_kb": round(raw_kb, 1),
    }
    notes: dict[str, Any] = {
        "clicks": CLICKS,
        "templates": TEMPLATES,
        "files_on_first_load": files,
        "other_browser_samples": len(remote),
        "browser": "Debian chromium, headless, DevTools protocol",
    }
    write_result(
        "console",
        figures,
        {"click_to_mimic_ms": {"max": 150}, "page_weight_kb": {"max": 500}},
        notes,
    )


if __name__ == "__main__":
    asyncio.run(main())
