"""The device service on its own: live reload (SIGHUP), failures kept visible, metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sim_wait import eventually

from wallctl.devices.config import DeviceConfig
from wallctl.devices.service import DeviceMetrics, DeviceService


def cfg(**kw: Any) -> DeviceConfig:
    base = {"id": "m", "name": "M", "protocol": "kramer-p3000", "simulate": True, "size": "4x4"}
    return DeviceConfig.model_validate({**base, **kw})


async def test_reload_keeps_links_applies_changes() -> None:
    svc = DeviceService([cfg()])
    await svc.start()
    try:
        assert await svc.wait_ready(15)
        first = svc.devices["m"].driver
        done = await svc.apply(
            [cfg(outputs={"1": "大屏输入1"}), cfg(id="n", protocol="extron-sis")]
        )
        assert done == ["m: names updated", "n: added"]
        assert svc.devices["m"].driver is first  # same link, new names
        assert svc.devices["m"].output_name(1) == "大屏输入1"
        assert await svc.wait_ready(15)
        done = await svc.apply([cfg(size="2x2")])
        assert done == ["n: removed", "m: restarted with its new settings"]
        assert set(svc.devices) == {"m"} and svc.devices["m"].driver is not first
        assert await svc.wait_ready(15)
        assert svc.devices["m"].driver.outputs == 2  # type: ignore[attr-defined]
    finally:
        await svc.stop()


async def test_failed_device_is_listed_and_others_run() -> None:
    svc = DeviceService([cfg(), cfg(id="bad", protocol="no-such")])
    await svc.start()
    try:
        await eventually(lambda: svc.devices["m"].driver.status.value == "ok", 15)
        listed = {d["id"]: d for d in svc.list_devices()}
        assert listed["bad"]["status"] == "bad_config"
        assert "unknown protocol" in listed["bad"]["detail"]
        registry = CollectorRegistry()
        registry.register(DeviceMetrics(svc))
        text = generate_latest(registry).decode()
        assert 'wallctl_device_up{device="m",protocol="kramer-p3000"} 1.0' in text
        assert 'wallctl_device_up{device="bad",protocol=""} 0.0' in text
        assert "wallctl_device_requests_total" in text
    finally:
        await svc.stop()
