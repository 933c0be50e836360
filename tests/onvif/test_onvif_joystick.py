"""The joystick logic alone (coalescing, dead-man, explicit stop), with recording senders."""

from __future__ import annotations

import asyncio

from drivers.errors import DeviceTimeout
from drivers.onvif.joystick import Joystick, Velocity


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Velocity | str] = []
        self.fail = fail

    async def move(self, v: Velocity) -> None:
        await asyncio.sleep(0.005)  # a SOAP round trip
        if self.fail:
            raise DeviceTimeout("ContinuousMove: no answer")
        self.sent.append(v)

    async def stop(self) -> None:
        self.sent.append("stop")


async def test_burst_sends_first_and_latest_then_deadman_stops() -> None:
    rec = Recorder()
    joy = Joystick(rec.move, rec.stop, coalesce_s=0.2, deadman_s=0.3)
    assert await joy.move((0.1, 0, 0)) is True
    for i in range(2, 10):
        assert await joy.move((0.1 * i, 0, 0)) is False
    assert rec.sent == [(0.1, 0, 0)]
    await asyncio.sleep(0.25)
    assert rec.sent == [(0.1, 0, 0), (0.9, 0, 0)]  # only the latest of the burst
    assert joy.coalesced == 8 and joy.sent == 2
    await asyncio.sleep(0.3)
    assert rec.sent[-1] == "stop" and joy.deadman_stops == 1 and not joy.moving
    await asyncio.sleep(0.4)
    assert rec.sent.count("stop") == 1  # stopped once, not again and again
    await joy.close()


async def test_explicit_stop_cancels_a_pending_move() -> None:
    rec = Recorder()
    joy = Joystick(rec.move, rec.stop, coalesce_s=0.2, deadman_s=5)
    await joy.move((0.5, 0, 0))
    await joy.move((0.6, 0, 0))  # waiting for the interval to end
    await joy.stop()
    await asyncio.sleep(0.3)
    assert rec.sent == [(0.5, 0, 0), "stop"]  # the pending 0.6 never went out after stop
    await joy.close()


async def test_a_failing_background_send_is_recorded_not_raised() -> None:
    rec = Recorder()
    joy = Joystick(rec.move, rec.stop, coalesce_s=0.05, deadman_s=0.2)
    await joy.move((0.5, 0, 0))
    rec.fail = True
    await joy.move((0.7, 0, 0))
    await asyncio.sleep(0.15)
    assert joy.last_error == "ContinuousMove: no answer"
    await asyncio.sleep(0.2)
    assert rec.sent[-1] == "stop"  # the dead-man still stops the camera
    await joy.close()
