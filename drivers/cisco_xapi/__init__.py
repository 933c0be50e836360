"""Cisco collaboration endpoints (RoomOS / CE): the xAPI over WebSocket and tshell.

``values`` (what a client value may be), ``tshell`` and ``jsonrpc`` (the two wire forms,
sans I/O), ``state`` (calls, audio, presentation from status pairs), ``driver``,
``ssh`` (tshell over SSH: the session as a transport, host key pinning and trust on
first use), ``farend`` (the simulated network shared with the Huawei simulator), ``model``
(the simulated endpoint), ``simulator`` (its WebSocket and tshell faces, and hosting) and
``ssh_server`` (its tshell on an SSH server).
"""

from __future__ import annotations

from typing import cast

from drivers.cisco_xapi.driver import CiscoXapiDriver
from drivers.cisco_xapi.farend import farend_from_options
from drivers.cisco_xapi.simulator import CiscoModel, CiscoSimulator, CiscoTshellSimulator
from drivers.cisco_xapi.ssh_server import (
    DEFAULT_MAX_SESSIONS,
    KEY_ALGORITHMS,
    CiscoSshSimulator,
    KeyType,
    read_host_key,
)
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


def _ssh_simulator(model: CiscoModel, o: dict[str, object]) -> CiscoSshSimulator:
    key_file = o.get("ssh_host_key")
    key_type = str(o.get("ssh_key_type") or "rsa")
    if key_type not in KEY_ALGORITHMS:
        raise ValueError(f"ssh_key_type must be one of {', '.join(KEY_ALGORITHMS)}")
    max_sessions = o.get("ssh_max_sessions", DEFAULT_MAX_SESSIONS)
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int):
        raise ValueError("ssh_max_sessions must be a number")
    return CiscoSshSimulator(
        model,
        read_host_key(str(key_file)) if key_file else None,
        key_type=cast(KeyType, key_type),
        max_sessions=max_sessions,
    )


async def _host(opts: SimOptions, address: str, port: int) -> RunningSimulator:
    """The xAPI WebSocket at ``/ws`` (plain ws); with ``transport = "tshell"`` (as a
    ``simulate = true`` device may set) tshell on TCP instead, with ``transport = "ssh"``
    tshell over SSH instead. ``tshell = "HOST:PORT"`` adds tshell on TCP beside the
    WebSocket and ``ssh = "HOST:PORT"`` tshell over SSH, all sharing one endpoint model."""
    o = opts.options
    if o.get("transport") == "tshell":
        return await serve_tcp(_simulator(opts), address, port)
    if o.get("transport") == "ssh":
        ssh = _ssh_simulator(_model(opts), o)
        await ssh.start(address, port)
        return HostedSimulator(ssh.host, ssh.port, f"cisco-xapi {ssh.describe()}", ssh.stop)
    if o.get("tls"):
        raise ValueError("the simulated cisco-xapi serves plain ws: set tls = false")
    tshell = _address(str(o["tshell"])) if o.get("tshell") else None
    ssh_at = _address(str(o["ssh"])) if o.get("ssh") else None
    sim = CiscoSimulator(_model(opts))
    ssh_sim = _ssh_simulator(sim.model, o) if ssh_at is not None else None
    await sim.start(address, port)
    assert sim.port is not None
    where = f"cisco-xapi on ws://{address}:{sim.port}/ws"

    async def stop() -> None:
        if ssh_sim is not None:
            await ssh_sim.stop()
        await sim.stop()

    try:
        if tshell is not None:
            await sim.start_tshell(*tshell, login=opts.password is not None)
            where += f", tshell on tcp {tshell[0]}:{sim.tshell_port}"
        if ssh_sim is not None and ssh_at is not None:
            await ssh_sim.start(*ssh_at)
            where += f", {ssh_sim.describe()}"
    except BaseException:
        await stop()
        raise
    return HostedSimulator(address, sim.port, where, stop)


PROTOCOL = register(CiscoXapiDriver, _simulator, host=_host)
