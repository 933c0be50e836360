"""Every registered protocol (both parts of the driver work) runs in the device service
with its simulator (simulate = true), reaches ok and does its family's basic job."""

from __future__ import annotations

import pytest

from drivers import registry
from drivers.display import DisplayDriver
from drivers.matrix import MatrixDriver
from wallctl.devices.config import DeviceConfig
from wallctl.devices.service import DeviceService

# The matrix switchers and displays of this issue (conference codecs have their own tests).
PROTOCOLS = ["extron-sis", "kramer-p3000", "videohub", "samsung-mdc", "lg"]


def test_all_five_protocols_are_registered() -> None:
    assert set(PROTOCOLS) <= set(registry.load_all())
    assert not registry.BROKEN


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_simulated_device_works_in_the_service(protocol: str) -> None:
    cfg = DeviceConfig.model_validate(
        {"id": "d1", "name": protocol, "protocol": protocol, "simulate": True}
    )
    events: list[tuple[str, dict[str, object]]] = []
    svc = DeviceService([cfg], lambda c, t, data, actor: events.append((t, data)))
    await svc.start()
    try:
        assert await svc.wait_ready(20), svc.devices["d1"].driver.status_detail
        listed = svc.list_devices()[0]
        assert listed["status"] == "ok" and listed["actions"]
        for act in listed["actions"]:
            assert act["params"]["type"] == "object"
        driver = svc.devices["d1"].driver
        if isinstance(driver, MatrixDriver):
            r = await svc.route("d1", 2, [1], "video")
            assert r["ok"] and driver.tie_of(1, "video") == 2
            assert any(t == "matrix.route" and d["output"] == 1 for t, d in events)
        elif isinstance(driver, DisplayDriver):
            await svc.display_power("d1", True)
            assert driver.state.get("power") == "on"
            source = driver.input_names[0]
            await svc.display_input("d1", source)
            assert driver.state.get("input") == source
        assert any(t == "device.status" and d["status"] == "ok" for t, d in events)
    finally:
        await svc.stop()
