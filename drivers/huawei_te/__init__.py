"""Huawei video-conference endpoints (TE10/TE20, IdeaHub, CloudLink Box/Bar): the HTTP API.

``api`` (requests and answers of ``action.cgi``, sans I/O), ``driver`` and ``simulator``
(HTTPS with a self-signed certificate, or HTTP).
"""

from __future__ import annotations

from drivers.huawei_te.driver import HuaweiTeDriver
from drivers.registry import SimOptions, register
from drivers.simulator import DeviceSimulator


def _simulator(opts: SimOptions) -> DeviceSimulator:
    # The framework hosts byte-stream simulators; this device speaks HTTPS. Rehearsals run
    # `wallctl simulate huawei-te --listen HOST:PORT` and point host/port at it.
    raise NotImplementedError(
        "huawei-te has no in-daemon simulator: run `wallctl simulate huawei-te --listen "
        "127.0.0.1:8443 --user api --password ...` and set host, port and tls for it"
    )


PROTOCOL = register(HuaweiTeDriver, _simulator)
