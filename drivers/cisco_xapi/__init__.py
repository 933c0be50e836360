"""Cisco collaboration endpoints (RoomOS / CE): the xAPI over WebSocket and tshell.

``values`` (what a client value may be), ``tshell`` and ``jsonrpc`` (the two wire forms,
sans I/O), ``state`` (calls, audio, presentation from status pairs), ``driver``,
``farend`` (the simulated network shared with the Huawei simulator), ``model`` (the
simulated endpoint) and ``simulator`` (its WebSocket and tshell faces, and hosting).
"""

from __future__ import annotations

from drivers.cisco_xapi.driver import CiscoXapiDriver
from drivers.cisco_xapi.farend import farend_from_options
from drivers.cisco_xapi.simulator import CiscoModel, CiscoSimulator, CiscoTshellSimulator
from drivers.registry import SimOptions, register
from drivers.simulator import DeviceSimulator, HostedSimulator, RunningSimulator, serve_tcp


def _model(opts: SimOptions) -> CiscoModel:
    user = opts.user or str(opts.options.get("user") or "admin")
    return CiscoModel(user, opts.password or "", farend_from_options(opts.options))


def _simulator(opts: SimOptions) -> DeviceSimulator:
    # The byte-stream face: tshell (TCP or pty), behind a login when a password is set.
    return CiscoTshellSimulator(
        _model(opts), login=opts.password is not None, reply_delay_s=opts.reply_delay_s
    )


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"tshell: {text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


async def _host(opts: SimOptions, address: str, port: int) -> RunningSimulator:
    """The xAPI WebSocket at ``/ws`` (plain ws); with ``transport = "tshell"`` (as a
    ``simulate = true`` device may set) tshell on TCP instead. ``tshell = "HOST:PORT"``
    adds tshell on TCP beside the WebSocket, sharing the one endpoint model."""
    o = opts.options
    if o.get("transport") == "tshell":
        return await serve_tcp(_simulator(opts), address, port)
    if o.get("tls"):
        raise ValueError("the simulated cisco-xapi serves plain ws: set tls = false")
    tshell = _address(str(o["tshell"])) if o.get("tshell") else None
    sim = CiscoSimulator(_model(opts))
    await sim.start(address, port)
    assert sim.port is not None
    where = f"cisco-xapi on ws://{address}:{sim.port}/ws"
    try:
        if tshell is not None:
            await sim.start_tshell(*tshell, login=opts.password is not None)
            where += f", tshell on tcp {tshell[0]}:{sim.tshell_port}"
    except BaseException:
        await sim.stop()
        raise
    return HostedSimulator(address, sim.port, where, sim.stop)


PROTOCOL = register(CiscoXapiDriver, _simulator, host=_host)
