"""ONVIF cameras: ``client`` (onvif-zeep-async with timeouts and plain data), ``driver``
(supervision, PTZ, presets, snapshots, PullPoint events), ``joystick`` (coalescing and the
dead-man stop), ``discovery`` (WS-Discovery probe), ``soap`` and ``simulator`` (the fake
camera: an HTTP SOAP server).
"""

from __future__ import annotations

from drivers.onvif.driver import OnvifDriver
from drivers.registry import SimOptions, register
from drivers.simulator import DeviceSimulator


def _simulator(opts: SimOptions) -> DeviceSimulator:
    # The framework hosts byte-stream simulators; a camera speaks SOAP over HTTP.
    raise NotImplementedError(
        "onvif has no in-daemon simulator: run `wallctl simulate onvif --listen "
        "127.0.0.1:8000 --user admin --password ...` and set host and port for it"
    )


PROTOCOL = register(OnvifDriver, _simulator)
