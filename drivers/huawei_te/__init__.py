"""Huawei video-conference endpoints (TE10/TE20, IdeaHub, CloudLink Box/Bar): the HTTP API.

``api`` (requests and answers of ``action.cgi``, sans I/O), ``driver`` and ``simulator``
(HTTPS with a self-signed certificate, or HTTP).
"""

from __future__ import annotations

from drivers.cisco_xapi.farend import farend_from_options
from drivers.huawei_te.driver import HuaweiTeDriver
from drivers.registry import SimOptions, register
from drivers.simulator import DeviceSimulator, HostedSimulator, RunningSimulator


def _simulator(opts: SimOptions) -> DeviceSimulator:
    # No byte-stream face: this device speaks HTTP(S) only (see _host).
    raise NotImplementedError("huawei-te speaks HTTP(S), not a byte stream: use --listen")


async def _host(opts: SimOptions, address: str, port: int) -> RunningSimulator:
    """``action.cgi`` over HTTPS with a fresh self-signed certificate (as shipped from the
    factory), or plain HTTP with ``tls = false``."""
    from drivers.huawei_te.simulator import HuaweiModel, HuaweiSimulator

    o = opts.options
    user = opts.user or str(o.get("user") or "api")
    sim = HuaweiSimulator(HuaweiModel(user, opts.password or "", farend_from_options(o)))
    plain = o.get("tls", True) is False
    await sim.start(address, port, plain=plain)
    assert sim.port is not None
    scheme = "http" if plain else "https"
    where = f"huawei-te on {scheme}://{address}:{sim.port}/action.cgi"
    return HostedSimulator(address, sim.port, where, sim.stop)


PROTOCOL = register(HuaweiTeDriver, _simulator, host=_host)
