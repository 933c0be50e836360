from wallctl.bus import BusEvent, EventBus
from wallctl.store import Actor


def test_publish_reaches_every_listener_and_survives_a_broken_one() -> None:
    bus = EventBus()
    seen: list[BusEvent] = []

    def broken(ev: BusEvent) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(seen.append)
    who = Actor("duty", via="api")
    bus.publish("device", "device.status", {"device": "m1", "status": "ok"}, actor=who)
    assert [(e.category, e.type, e.data["status"], e.actor) for e in seen] == [
        ("device", "device.status", "ok", who)
    ]
    assert bus.listener_errors == 1
    unsubscribe()
    unsubscribe()  # twice is harmless
    bus.publish("device", "device.status", {"device": "m1", "status": "disconnected"})
    assert len(seen) == 1
    assert bus.published == 2
